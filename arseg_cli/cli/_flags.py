"""Library messages in the words of the command line: the one translation of option names to flags.

Library errors name options as a Python caller knows them: the parameter in backquotes (`resume`,
`output`), and AR-Seg's two numbers as "scale s" and "keyframe interval L". A command whose function
parameter has that name (commands name their parameters after the library's) shows its flag instead:
"`resume` needs `output`" -> "--resume needs --output", "scale s must be in (0, 1]" -> "--scale must be
in (0, 1]". Names the command does not have are left as they are.
"""

from __future__ import annotations

import re
from typing import Any

#: AR-Seg's numbers as library messages write them -> the parameters that may name them.
_PHRASES = {"scale s": ("scale", "scales"), "keyframe interval L": ("keyframe_interval",)}
#: Library names whose command parameter is called otherwise.
_ALIASES = {"lr_model": "lr_weights", "onnx_dir": "onnx", "size_hw": "size"}
_NAMED = re.compile(r"`([a-z][a-z_]*)`")


def in_flag_words(message: str, command: Any) -> str:
    """`message` with the option names of `command` (a Click command, or None) turned into its flags."""
    flags = _flags(command)
    if not flags:
        return message

    def flag(match: re.Match[str]) -> str:
        name = match.group(1)
        return flags.get(name) or flags.get(_ALIASES.get(name, ""), match.group(0))

    message = _NAMED.sub(flag, message)
    for phrase, names in _PHRASES.items():
        for name in names:
            if name in flags:
                message = message.replace(phrase, flags[name])
    return message


def _flags(command: Any) -> dict[str, str]:
    """Parameter name -> its first long flag ('--scale'), for the options of `command`."""
    flags = {}
    for param in getattr(command, "params", ()):
        long = [opt for opt in getattr(param, "opts", ()) if opt.startswith("--")]
        if getattr(param, "param_type_name", "") == "option" and long and param.name:
            flags[param.name] = long[0]
    return flags


__all__ = ["in_flag_words"]
