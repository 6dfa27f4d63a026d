"""Issue 25 item 5c: offline, a hub model id missing from the local cache is refused by the pre-run checks."""
from __future__ import annotations

import pytest
from huggingface_hub import constants as hub_constants

from r2d.config import ConfigError
from r2d.run import preflight


def test_offline_uncached_hub_id_is_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConfigError) as caught:
        preflight.check_hub_model_offline("no-such-org/no-such-model-r2d", str(tmp_path / "empty-cache"))
    message = str(caught.value)
    assert "no-such-org/no-such-model-r2d" in message and "HF_HUB_OFFLINE" in message and "\n" not in message


def test_online_the_check_leaves_it_to_the_download(tmp_path, monkeypatch):
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    preflight.check_hub_model_offline("no-such-org/no-such-model-r2d", str(tmp_path / "empty-cache"))
