from django import template

from consent.engine import scope_words as _scope_words
from consent.wording import image_count, mid_sentence, written_date
from consent.wording import scan_name as _scan_name

register = template.Library()


@register.filter
def person_name(dicom_name: str) -> str:
    """A DICOM person name (Family^Given^Middle^Prefix^Suffix) as people write it."""
    parts = [p.strip() for p in (dicom_name or "").split("^")]
    parts += [""] * (5 - len(parts))
    family, given, middle, prefix, suffix = parts[:5]
    return " ".join(p for p in (prefix, given, middle, family, suffix) if p)


register.filter("mid_sentence", mid_sentence)


@register.filter
def scope_words(record) -> str:
    """A record's scope in words: 'CT scans', 'scans of the head and brain'."""
    return _scope_words(record.scope_kind, record.scope_value)


register.filter("written_date", written_date)
register.filter("image_count", image_count)


@register.filter
def scan_name(study) -> str:
    """A study's name as a person writes it ('CT head without contrast')."""
    return _scan_name(study.description, study.modalities)
