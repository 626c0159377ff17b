"""Small helpers for the words patients and staff read."""

from functools import lru_cache


# Cached: the set-based decision writes a purpose's name into every reason it gives.
@lru_cache(maxsize=256)
def mid_sentence(name: str) -> str:
    """'Training AI tools' -> 'training AI tools': lower the first letter, keep acronyms."""
    if not name or (len(name) > 1 and name[1].isupper()):
        return name
    return name[0].lower() + name[1:]
