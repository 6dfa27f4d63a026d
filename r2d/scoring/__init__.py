"""How good a run is: label metrics, BLEU and BERTScore (with signatures), the LLM judge, health flags."""
