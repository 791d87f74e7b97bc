"""The emotion labels, once: their order, how they look, and their arousal.

A model names its own labels in ``labels.json``; these are the seven of the
source paper (RAVDESS "calm" folds into neutral, or is an 8th class with
``--keep-calm``).  Labels another model brings get a letter and a spare colour
(:func:`emotion_look`).
"""

from __future__ import annotations

EMOTIONS = ("angry", "disgust", "fearful", "happy", "neutral", "sad", "surprised")
EMOTIONS_WITH_CALM = ("angry", "calm", "disgust", "fearful", "happy", "neutral", "sad", "surprised")

# Arousal (how activated the voice is), read from the class probabilities:
# the high and the low classes of the circumplex.  Disgust is neither (its
# arousal varies by speaker and corpus), so it counts on no side.
HIGH_AROUSAL = frozenset({"angry", "fearful", "happy", "surprised"})
LOW_AROUSAL = frozenset({"neutral", "calm", "sad"})

# A letter per emotion so that nothing depends on colour alone, and mid-tone
# backgrounds with a contrasting letter, readable on dark and light terminals.
LOOKS: dict[str, tuple[str, str, str]] = {  # label: (letter, background, letter colour)
    "angry": ("A", "red3", "bright_white"),
    "disgust": ("D", "chartreuse4", "bright_white"),
    "fearful": ("F", "medium_purple3", "bright_white"),
    "happy": ("H", "gold3", "black"),
    "neutral": ("N", "grey58", "black"),
    "sad": ("S", "dodger_blue3", "bright_white"),
    "surprised": ("U", "orange3", "black"),
    "calm": ("C", "cyan4", "bright_white"),
}
_SPARE = [("magenta3", "bright_white"), ("cyan3", "black"), ("yellow4", "bright_white"), ("deep_pink3", "bright_white")]
UNCERTAIN = ("?", "grey35", "bright_white")


def emotion_look(label: str) -> tuple[str, str, str]:
    """(letter, background colour, letter colour) of a label; a label the table
    does not know (another model's) gets its initial and a spare colour, added
    to the table so that it keeps them (a benign race if two threads ask)."""
    if label not in LOOKS:
        bg, fg = _SPARE[sum(map(ord, label)) % len(_SPARE)]
        LOOKS[label] = ((label[:1] or "?").upper(), bg, fg)
    return LOOKS[label]


def arousal(probs: dict[str, float]) -> float | None:
    """Probability of a high-arousal state, 0 to 1: the high classes' share of
    the probability on the high and low classes.  None for a model with no
    class on either side."""
    high = sum(p for k, p in probs.items() if k in HIGH_AROUSAL)
    low = sum(p for k, p in probs.items() if k in LOW_AROUSAL)
    return high / (high + low) if high + low > 0 else None
