"""Commands and override values that survive odd paths (spaces, ``#``, quotes, non-ASCII letters).

``hydra_value`` writes a value so that Hydra's override parser, and OmegaConf after it, read back exactly
the text (``resume=`` and ``hydra.run.dir=`` that ``visgrad.utils.resume`` re-emits); ``command`` writes a
``python train.py ...`` line that a shell splits into exactly the given arguments (the commands that
messages and summaries print).
"""

from __future__ import annotations

import re
import shlex

_PLAIN = re.compile(r"[\w/.+\-@~:]+")  # text Hydra reads as the same string without quotes


def hydra_value(text: str) -> str:
    """``text`` as a Hydra override value that reads back as exactly ``text``: as it is when that is
    safe, else single-quoted (``\\'`` for a quote, doubled backslashes before a quote or the end, ``\\${``
    so that OmegaConf does not interpolate)."""
    if _PLAIN.fullmatch(text):
        return text
    text = re.sub(r"(\\*)\$\{", lambda m: m.group(1) * 2 + "\\${", text)
    text = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), text)
    return f"'{text}'"


def command(*args: str, app: str = "train.py") -> str:
    """``python <app> <args>`` as a shell command line (each argument quoted where needed)."""
    return shlex.join(["python", app, *args])
