"""Build registry/data/modalities.json and anatomy.json. Run by hand, never at run time:

    .venv/bin/python registry/data/build_vocabulary.py

The codes come from the DICOM content mapping resource as pydicom 3.0 ships it
(``pydicom.sr``: CID 29 Acquisition Modality, CID 4031 Common Anatomic Regions and the
SNOMED concepts behind them, with their legacy SNOMED-RT ids). What this file decides, and
README.md explains, is only: which Body Part Examined defined term goes with which concept
(DICOM PS3.16 Annex L, Table L-1), which region a person would name covers it, the aliases
people type, and the words read in descriptions."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
from pydicom.sr import _snomed_dict
from pydicom.sr._concepts_dict import concepts
from pydicom.sr.codedict import codes

HERE = Path(__file__).resolve().parent
# pydicom generates its dictionaries from the standard and does not record the edition.
EDITION = "the DICOM content mapping resource as generated into pydicom " + pydicom.__version__
ANNEX_L = "DICOM PS3.16 Annex L, Table L-1 (edition 2023b)"

# The regions a person would name, in the order the portal lists them.
REGIONS = [
    ("HEAD", "head and brain"),
    ("NECK", "neck and throat"),
    ("CHEST", "chest, lungs and heart"),
    ("BREAST", "breasts"),
    ("ABDOMEN", "abdomen (belly)"),
    ("PELVIS", "pelvis and hips"),
    ("SPINE", "spine and back"),
    ("UPPERLIMB", "arms, shoulders and hands"),
    ("LOWERLIMB", "legs, knees and feet"),
]
ALL = [code for code, _ in REGIONS]

# Body Part Examined defined term (PS3.16 Annex L) -> (SNOMED concept keyword in pydicom,
# regions it lies in). A term that spans regions lists each: a no to any of them catches
# it, and a yes to one region alone does not cover it. "" = a concept of CID 4031 that
# Annex L gives no defined term; it is still read from Anatomic Region Sequence.
PARTS = [
    # head and brain
    ("HEAD", "Head", ["HEAD"]), ("BRAIN", "Brain", ["HEAD"]), ("SKULL", "Skull", ["HEAD"]),
    ("ORBIT", "OrbitalStructure", ["HEAD"]), ("EYE", "Eye", ["HEAD"]),
    ("EAR", "Ear", ["HEAD"]), ("IAC", "InternalAuditoryCanal", ["HEAD"]),
    ("FACE", "Face", ["HEAD"]), ("JAW", "JawRegion", ["HEAD"]),
    ("MANDIBLE", "Mandible", ["HEAD"]), ("MAXILLA", "Maxilla", ["HEAD"]),
    ("TMJ", "TemporomandibularJoint", ["HEAD"]), ("NOSE", "Nose", ["HEAD"]),
    ("MASTOID", "MastoidBone", ["HEAD"]), ("SELLA", "SellaTurcica", ["HEAD"]),
    ("OPTICCANAL", "OpticCanal", ["HEAD"]), ("ZYGOMA", "Zygoma", ["HEAD"]),
    ("CEREBELLUM", "Cerebellum", ["HEAD"]), ("INTRACRANIAL", "Intracranial", ["HEAD"]),
    ("MOUTH", "Mouth", ["HEAD"]), ("PAROTID", "ParotidGland", ["HEAD"]),
    ("", "ParanasalSinus", ["HEAD"]), ("", "FacialBones", ["HEAD"]),
    ("", "NasalBone", ["HEAD"]), ("", "EyeRegion", ["HEAD"]),
    ("HEADNECK", "HeadAndNeck", ["HEAD", "NECK"]),
    ("", "VertebralColumnAndCranium", ["HEAD", "SPINE"]),
    # neck
    ("NECK", "Neck", ["NECK"]), ("LARYNX", "Larynx", ["NECK"]),
    ("PHARYNX", "Pharynx", ["NECK"]), ("THYROID", "Thyroid", ["NECK"]),
    ("CAROTID", "CarotidArtery", ["NECK"]),
    ("SUBMANDIBULAR", "SubmandibularGland", ["HEAD", "NECK"]),
    ("TRACHEA", "Trachea", ["NECK", "CHEST"]),
    ("NECKCHEST", "NeckAndChest", ["NECK", "CHEST"]),
    ("NECKCHESTABDOMEN", "NeckChestAndAbdomen", ["NECK", "CHEST", "ABDOMEN"]),
    ("NECKCHESTABDPELV", "NeckChestAbdomenAndPelvis", ["NECK", "CHEST", "ABDOMEN", "PELVIS"]),
    # chest
    ("CHEST", "Chest", ["CHEST"]), ("LUNG", "Lung", ["CHEST"]), ("HEART", "Heart", ["CHEST"]),
    ("MEDIASTINUM", "Mediastinum", ["CHEST"]), ("BRONCHUS", "Bronchus", ["CHEST"]),
    ("ESOPHAGUS", "Esophagus", ["CHEST"]), ("RIB", "Rib", ["CHEST"]),
    ("STERNUM", "Sternum", ["CHEST"]), ("SCJOINT", "SternoclavicularJoint", ["CHEST"]),
    ("", "ApexOfLung", ["CHEST"]), ("AORTA", "Aorta", ["CHEST", "ABDOMEN"]),
    ("CHESTABDOMEN", "ChestAndAbdomen", ["CHEST", "ABDOMEN"]),
    ("CHESTABDPELVIS", "ChestAbdomenAndPelvis", ["CHEST", "ABDOMEN", "PELVIS"]),
    ("", "EsophagusStomachAndDuodenum", ["CHEST", "ABDOMEN"]),
    ("AXILLA", "Axilla", ["CHEST", "UPPERLIMB"]),
    # breast
    ("BREAST", "Breast", ["BREAST"]),
    # abdomen
    ("ABDOMEN", "Abdomen", ["ABDOMEN"]), ("LIVER", "Liver", ["ABDOMEN"]),
    ("KIDNEY", "Kidney", ["ABDOMEN"]), ("SPLEEN", "Spleen", ["ABDOMEN"]),
    ("PANCREAS", "Pancreas", ["ABDOMEN"]), ("STOMACH", "Stomach", ["ABDOMEN"]),
    ("GALLBLADDER", "Gallbladder", ["ABDOMEN"]), ("BILEDUCT", "BileDuct", ["ABDOMEN"]),
    ("BILIARYTRACT", "BiliaryTract", ["ABDOMEN"]),
    ("COMMONBILEDUCT", "CommonBileDuct", ["ABDOMEN"]),
    ("PANCREATICDUCT", "PancreaticDuct", ["ABDOMEN"]),
    ("PANCBILEDUCT", "PancreaticDuctAndBileDuctSystems", ["ABDOMEN"]),
    ("", "LiverAndBiliaryStructure", ["ABDOMEN"]),
    ("DUODENUM", "Duodenum", ["ABDOMEN"]), ("JEJUNUM", "Jejunum", ["ABDOMEN"]),
    ("ILEUM", "Ileum", ["ABDOMEN"]), ("SMALLINTESTINE", "SmallIntestine", ["ABDOMEN"]),
    ("LARGEINTESTINE", "LargeIntestine", ["ABDOMEN", "PELVIS"]),
    ("COLON", "Colon", ["ABDOMEN", "PELVIS"]), ("ADRENAL", "AdrenalGland", ["ABDOMEN"]),
    ("UPRURINARYTRACT", "UpperUrinaryTract", ["ABDOMEN"]),
    ("URETER", "Ureter", ["ABDOMEN", "PELVIS"]),
    ("ABDOMENPELVIS", "AbdomenAndPelvis", ["ABDOMEN", "PELVIS"]),
    # pelvis
    ("PELVIS", "Pelvis", ["PELVIS"]), ("BLADDER", "Bladder", ["PELVIS"]),
    ("PROSTATE", "Prostate", ["PELVIS"]), ("RECTUM", "Rectum", ["PELVIS"]),
    ("ANUS", "Anus", ["PELVIS"]), ("UTERUS", "Uterus", ["PELVIS"]),
    ("OVARY", "Ovary", ["PELVIS"]), ("TESTIS", "Testis", ["PELVIS"]),
    ("URETHRA", "Urethra", ["PELVIS"]), ("ILIUM", "Ilium", ["PELVIS"]),
    ("SIJOINT", "SacroiliacJoint", ["PELVIS"]),
    ("", "UterusAndFallopianTubes", ["PELVIS"]),
    ("HIP", "HipJoint", ["PELVIS", "LOWERLIMB"]), ("", "Hip", ["PELVIS", "LOWERLIMB"]),
    ("PELVISLOWEXTREMT", "PelvisAndLowerExtremities", ["PELVIS", "LOWERLIMB"]),
    # spine
    ("SPINE", "Spine", ["SPINE"]), ("TSPINE", "ThoracicSpine", ["SPINE"]),
    ("LSPINE", "LumbarSpine", ["SPINE"]), ("LSSPINE", "LumboSacralSpine", ["SPINE"]),
    ("TLSPINE", "ThoracoLumbarSpine", ["SPINE"]), ("BACK", "Back", ["SPINE"]),
    ("CSPINE", "CervicalSpine", ["SPINE", "NECK"]),
    ("CTSPINE", "CervicoThoracicSpine", ["SPINE", "NECK"]),
    ("SSPINE", "Sacrum", ["SPINE", "PELVIS"]), ("COCCYX", "Coccyx", ["SPINE", "PELVIS"]),
    ("", "SacroCoccygealSpine", ["SPINE", "PELVIS"]),
    # arms
    ("UPPERLIMB", "UpperLimb", ["UPPERLIMB"]), ("SHOULDER", "Shoulder", ["UPPERLIMB"]),
    ("ACJOINT", "AcromioclavicularJoint", ["UPPERLIMB"]),
    ("CLAVICLE", "Clavicle", ["UPPERLIMB", "CHEST"]),
    ("SCAPULA", "Scapula", ["UPPERLIMB", "CHEST"]),
    ("UPPERARM", "UpperArm", ["UPPERLIMB"]), ("HUMERUS", "Humerus", ["UPPERLIMB"]),
    ("ELBOW", "ElbowJoint", ["UPPERLIMB"]), ("FOREARM", "Forearm", ["UPPERLIMB"]),
    ("WRIST", "WristJoint", ["UPPERLIMB"]), ("HAND", "Hand", ["UPPERLIMB"]),
    ("FINGER", "Finger", ["UPPERLIMB"]), ("THUMB", "Thumb", ["UPPERLIMB"]),
    ("", "BoneOfUpperLimb", ["UPPERLIMB"]), ("", "MuscleOfUpperLimb", ["UPPERLIMB"]),
    # legs
    ("LOWERLIMB", "LowerLimb", ["LOWERLIMB"]), ("THIGH", "Thigh", ["LOWERLIMB"]),
    ("FEMUR", "Femur", ["LOWERLIMB"]), ("KNEE", "Knee", ["LOWERLIMB"]),
    ("PATELLA", "Patella", ["LOWERLIMB"]), ("LOWERLEG", "LowerLeg", ["LOWERLIMB"]),
    ("FIBULA", "Fibula", ["LOWERLIMB"]), ("ANKLE", "AnkleJoint", ["LOWERLIMB"]),
    ("FOOT", "Foot", ["LOWERLIMB"]), ("CALCANEUS", "Calcaneus", ["LOWERLIMB"]),
    ("TOE", "Toe", ["LOWERLIMB"]), ("SESAMOID", "SesamoidBonesOfFoot", ["LOWERLIMB"]),
    ("", "TarsalJoint", ["LOWERLIMB"]),
    ("", "BoneOfLowerLimb", ["LOWERLIMB"]), ("", "MuscleOfLowerLimb", ["LOWERLIMB"]),
    # more than one region
    ("EXTREMITY", "Extremity", ["UPPERLIMB", "LOWERLIMB"]),
    ("WHOLEBODY", "EntireBody", ALL),
]

# Words in Study/Series Description and Protocol Name read as a defined term (besides the
# defined terms themselves). Only whole words count.
KEYWORDS = {
    "THORAX": "CHEST", "LUNGS": "LUNG", "CARDIAC": "HEART", "CORONARY": "HEART",
    "CEREBRAL": "BRAIN", "CRANIUM": "SKULL", "CRANIAL": "SKULL", "ORBITS": "ORBIT",
    "SINUS": "ParanasalSinus", "SINUSES": "ParanasalSinus", "ABD": "ABDOMEN",
    "ABDOMINAL": "ABDOMEN", "PELVIC": "PELVIS", "MAMMO": "BREAST", "MAMMOGRAM": "BREAST",
    "MAMMOGRAPHY": "BREAST", "BREASTS": "BREAST", "KNEES": "KNEE", "HIPS": "HIP",
    "SHOULDERS": "SHOULDER", "CERVICAL": "CSPINE", "LUMBAR": "LSPINE", "RENAL": "KIDNEY",
    "HEPATIC": "LIVER",
}

# What people type for a kind of scan. X-ray is a group: it covers more than one code.
MODALITY_ALIASES = {
    "MRI": "MR", "MRI SCAN": "MR", "MAGNETIC RESONANCE": "MR", "NMR": "MR",
    "CAT": "CT", "CAT SCAN": "CT", "CT SCAN": "CT", "CTSCAN": "CT",
    "PET": "PT", "PET SCAN": "PT", "ULTRASOUND": "US", "SONOGRAM": "US", "SONOGRAPHY": "US",
    "ECHO": "US", "MAMMOGRAM": "MG", "MAMMOGRAPHY": "MG", "MAMMO": "MG",
    "X-RAY": "XRAY", "X RAY": "XRAY", "XRAYS": "XRAY", "X-RAYS": "XRAY", "RADIOGRAPH": "XRAY",
    "NUCLEAR": "NM", "SPECT": "NM", "ANGIOGRAM": "XA", "ANGIOGRAPHY": "XA",
    "FLUOROSCOPY": "RF", "DEXA": "BMD", "DXA": "BMD", "PANORAMIC": "PX", "OPG": "PX",
}
MODALITY_GROUPS = [
    # Plain radiographs: computed, digital and radiographic imaging (film scanned).
    ("XRAY", "X-rays (CR, DX and RG)", ["CR", "DX", "RG"]),
]
PLAIN_LABELS = {
    "CT": "CT scans", "MR": "MRI scans", "CR": "X-rays (computed radiography)",
    "DX": "X-rays (digital radiography)", "US": "ultrasound scans", "MG": "mammograms",
    "PT": "PET scans", "NM": "nuclear medicine scans", "XA": "angiograms",
    "RF": "fluoroscopy", "BMD": "bone density scans", "PX": "panoramic dental X-rays",
    "IO": "dental X-rays", "RG": "X-rays (scanned film)", "OCT": "OCT scans",
}


def _code(keyword: str) -> dict:
    value, (meaning, cids) = next(iter(concepts["SCT"][keyword].items()))
    srt = _snomed_dict.mapping["SCT"].get(value, "")
    return {"scheme": "SCT", "value": value, "meaning": meaning, "srt": srt,
            "in_cid_4031": 4031 in cids}


def build() -> None:
    cid29 = codes.cid29
    modalities = [{"code": c.value, "meaning": c.meaning,
                   "label": PLAIN_LABELS.get(c.value, f"{c.meaning} ({c.value})")}
                  for c in (getattr(cid29, name) for name in cid29.dir())]
    known = {m["code"] for m in modalities}
    groups = {g[0] for g in MODALITY_GROUPS}
    unknown = {v for v in MODALITY_ALIASES.values() if v not in known | groups}
    if unknown:
        raise SystemExit(f"aliases to unknown modalities: {unknown}")
    (HERE / "modalities.json").write_text(json.dumps({
        "source": "DICOM PS3.16 CID 29 Acquisition Modality (the Modality defined terms of "
                  "PS3.3 C.7.3.1.1.1 used for acquisition), " + EDITION,
        "modalities": sorted(modalities, key=lambda m: m["code"]),
        "groups": [{"code": c, "label": label, "covers": covers}
                   for c, label, covers in MODALITY_GROUPS],
        "aliases": MODALITY_ALIASES,
    }, indent=1) + "\n")
    parts = [{"term": term, "code": _code(keyword), "regions": regions}
             for term, keyword, regions in PARTS]
    if len({p["code"]["value"] for p in parts}) != len(parts):
        raise SystemExit("a concept is listed twice")
    (HERE / "anatomy.json").write_text(json.dumps({
        "source": "Body Part Examined defined terms and their anatomic region codes: "
                  + ANNEX_L + "; codes and meanings: " + EDITION,
        "regions": [{"code": c, "label": label} for c, label in REGIONS],
        "parts": parts,
        "keywords": KEYWORDS,
    }, indent=1) + "\n")


if __name__ == "__main__":
    build()
