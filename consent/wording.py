"""Small helpers for the words patients and staff read."""

from functools import lru_cache

from django.utils import dateformat
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext, pgettext

from registry import vocabulary


# Cached: the set-based decision writes a purpose's name into every reason it gives.
@lru_cache(maxsize=256)
def mid_sentence(name: str) -> str:
    """'Training AI tools' -> 'training AI tools': lower the first letter, keep acronyms."""
    if not name or (len(name) > 1 and name[1].isupper()):
        return name
    return name[0].lower() + name[1:]


# Words kept in capitals when a DICOM description in capitals is written as a person would.
_ACRONYMS = frozenset({
    "CT", "MR", "MRI", "PET", "SPECT", "US", "CR", "DX", "MG", "NM", "PT", "XA", "RF", "XR",
    "PA", "AP", "IV", "ECG", "EEG", "DEXA", "AI", "3D", "2D", "CTA", "MRA", "HR", "C1", "C2",
    "L1", "L2", "L3", "L4", "L5", "T1", "T2", "S1", "FLAIR", "DWI", "ADC"})

# A scan's kind as people say it, for a scan with no description.
# Lazy: the words are looked up in the reader's language when the name is written.
_KIND_WORDS = {"CT": gettext_lazy("CT scan"), "MR": gettext_lazy("MRI scan"),
               "US": gettext_lazy("ultrasound scan"), "CR": gettext_lazy("X-ray"),
               "DX": gettext_lazy("X-ray"), "RG": gettext_lazy("X-ray"),
               "MG": gettext_lazy("mammogram"), "PT": gettext_lazy("PET scan"),
               "NM": gettext_lazy("nuclear medicine scan"), "XA": gettext_lazy("angiogram"),
               "IO": gettext_lazy("dental X-ray"), "PX": gettext_lazy("dental X-ray"),
               "OT": gettext_lazy("scan")}


def scan_name(description: str, modalities: str = "") -> str:
    """A scan's name as a person writes it: 'CT HEAD WITHOUT CONTRAST' -> 'CT head without
    contrast'. A description already in mixed case was written by a person: kept as it is.
    With no description, the kind of scan ('MRI scan')."""
    text = " ".join((description or "").split())
    if not text:
        kinds = [str(_KIND_WORDS.get(code.strip().upper(), _("scan")))
                 for code in (modalities or "").replace("\\", ",").split(",") if code.strip()]
        named = _(" and ").join(dict.fromkeys(kinds)) or _("scan")
        return named[0].upper() + named[1:]
    if text != text.upper():
        return text[0].upper() + text[1:]
    words = [w if w.strip("(),.:;/-+") in _ACRONYMS else w.lower() for w in text.split(" ")]
    named = " ".join(words)
    return named[0].upper() + named[1:]


def count_words(count: int, one: str, many: str) -> str:
    """'1 image', '3 images'."""
    return f"{count} {one if count == 1 else many}"


def image_count(count: int) -> str:
    """'1 image', '3 images', in the reader's language."""
    return ngettext("%(count)d image", "%(count)d images", count) % {"count": count}


def your_scope(kind: str, value: str, study_name: str = "") -> str:
    """A choice's reach, said to the patient: 'all your scans', 'your CT scans', 'scans of
    your head and brain', 'your scan "CT head"'."""
    if kind == "study":
        return _("your scan “%(name)s”") % {"name": study_name} if study_name else _("this scan")
    if kind == "modality":
        if value in vocabulary.modality_groups():
            return _("your X-rays")
        label = vocabulary.modality_label(value)
        # Vocabulary labels are plain words ("CT scans") or a name with its code in brackets.
        if label != value:
            return _("your %(kind)s") % {"kind": label[0].lower() + label[1:]}
        return _("your %(code)s scans") % {"code": value}
    if kind == "body_part":
        return _("scans of your %(part)s") % {"part": vocabulary.region_label(value)}
    return _("all your scans")


def written_date(moment) -> str:
    """A date as people write it: '2 March 2026' ('2 de marzo de 2026' in Spanish)."""
    # The format itself is translated: languages differ in more than the month's name.
    return dateformat.format(moment, pgettext("written date", "j F Y")) if moment else ""


def patient_reason(*, allowed: bool, purpose, records, unsure: bool = False,
                   study_name: str = "") -> str:
    """Why a scan may or may not be used, in the first person, with no record numbers:
    'You said no to training AI tools for scans of your head on 2 March 2026.'"""
    use = mid_sentence(purpose.name)
    if not records:
        if allowed:
            return _("You have not said no to %(use)s, and the hospital allows it unless you "
                     "do. You can say no at any time.") % {"use": use}
        return _("You have not said yes to %(use)s, so it does not happen unless you do."
                 ) % {"use": use}
    parts = []
    for record in records:
        # Whole sentences per case, so each language can order its words its own way.
        words = {"use": mid_sentence(record.purpose.name),
                 "scope": your_scope(record.scope_kind, record.scope_value, study_name),
                 "date": written_date(record.recorded_at), "who": record.proxy_name}
        if record.proxy_name:
            sentence = (_("%(who)s said yes to %(use)s for %(scope)s on %(date)s")
                        if record.decision == "permit" else
                        _("%(who)s said no to %(use)s for %(scope)s on %(date)s"))
        else:
            sentence = (_("You said yes to %(use)s for %(scope)s on %(date)s")
                        if record.decision == "permit" else
                        _("You said no to %(use)s for %(scope)s on %(date)s"))
        parts.append(sentence % words)
    text = "; ".join(parts) + "."
    if unsure:
        text += " " + _("The part of the body is not recorded for this scan, so your no "
                        "covers it to be safe.")
    return text
