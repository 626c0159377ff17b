"""Small helpers for the words patients and staff read."""

from functools import lru_cache

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
_KIND_WORDS = {"CT": "CT scan", "MR": "MRI scan", "US": "ultrasound scan", "CR": "X-ray",
               "DX": "X-ray", "RG": "X-ray", "MG": "mammogram", "PT": "PET scan",
               "NM": "nuclear medicine scan", "XA": "angiogram", "IO": "dental X-ray",
               "PX": "dental X-ray", "OT": "scan"}


def scan_name(description: str, modalities: str = "") -> str:
    """A scan's name as a person writes it: 'CT HEAD WITHOUT CONTRAST' -> 'CT head without
    contrast'. A description already in mixed case was written by a person: kept as it is.
    With no description, the kind of scan ('MRI scan')."""
    text = " ".join((description or "").split())
    if not text:
        kinds = [_KIND_WORDS.get(code.strip().upper(), "scan")
                 for code in (modalities or "").replace("\\", ",").split(",") if code.strip()]
        named = " and ".join(dict.fromkeys(kinds)) or "scan"
        return named[0].upper() + named[1:]
    if text != text.upper():
        return text[0].upper() + text[1:]
    words = [w if w.strip("(),.:;/-+") in _ACRONYMS else w.lower() for w in text.split(" ")]
    named = " ".join(words)
    return named[0].upper() + named[1:]


def count_words(count: int, one: str, many: str) -> str:
    """'1 image', '3 images'."""
    return f"{count} {one if count == 1 else many}"


def your_scope(kind: str, value: str, study_name: str = "") -> str:
    """A choice's reach, said to the patient: 'all your scans', 'your CT scans', 'scans of
    your head and brain', 'your scan "CT head"'."""
    if kind == "study":
        return f"your scan “{study_name}”" if study_name else "this scan"
    if kind == "modality":
        if value in vocabulary.modality_groups():
            return "your X-rays"
        label = vocabulary.modality_label(value)
        # Vocabulary labels are plain words ("CT scans") or a name with its code in brackets.
        return f"your {label[0].lower() + label[1:]}" if label != value else f"your {value} scans"
    if kind == "body_part":
        return f"scans of your {vocabulary.region_label(value)}"
    return "all your scans"


def written_date(moment) -> str:
    """A date as people write it: '2 March 2026'."""
    return f"{moment.day} {moment:%B %Y}" if moment else ""


def patient_reason(*, allowed: bool, purpose, records, unsure: bool = False,
                   study_name: str = "") -> str:
    """Why a scan may or may not be used, in the first person, with no record numbers:
    'You said no to training AI tools for scans of your head on 2 March 2026.'"""
    use = mid_sentence(purpose.name)
    if not records:
        if allowed:
            return (f"You have not said no to {use}, and the hospital allows it unless you "
                    "do. You can say no at any time.")
        return f"You have not said yes to {use}, so it does not happen unless you do."
    parts = []
    for record in records:
        who = (record.proxy_name if record.proxy_name else "You")
        answer = "yes" if record.decision == "permit" else "no"
        parts.append(f"{who} said {answer} to {mid_sentence(record.purpose.name)} for "
                     f"{your_scope(record.scope_kind, record.scope_value, study_name)} on "
                     f"{written_date(record.recorded_at)}")
    text = "; ".join(parts) + "."
    if unsure:
        text += (" The part of the body is not recorded for this scan, so your no covers it "
                 "to be safe.")
    return text
