"""The referee report: its plan, verdicts in words from the rows, one page as Markdown and HTML."""
