"""A synthetic hospital for the demo, built from pydicom's own test files.

Every file is rewritten with new UIDs and a made-up patient; no name, ID or date from the
source files survives. Nothing here is used outside ``manage.py demo`` and the tests.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

CORPUS = Path(pydicom.__file__).parent / "data" / "test_files"


@dataclass(frozen=True)
class Recipe:
    description: str
    modality: str
    body_part: str
    templates: tuple[str, ...]  # paths relative to pydicom's test_files


RECIPES = (
    Recipe("CT HEAD WITHOUT CONTRAST", "CT", "HEAD", ("CT_small.dcm",) * 3),
    Recipe("MR BRAIN", "MR", "BRAIN", ("MR_small.dcm",) * 3),
    Recipe("CT ABDOMEN PELVIS", "CT", "ABDOMEN", (
        "dicomdirtests/77654033/CT2/17106", "dicomdirtests/77654033/CT2/17136",
        "dicomdirtests/77654033/CT2/17166")),
    Recipe("CR CHEST PA", "CR", "CHEST", ("dicomdirtests/77654033/CR1/6154",)),
    Recipe("MR KNEE LEFT", "MR", "KNEE", (
        "dicomdirtests/98892003/MR2/4950", "dicomdirtests/98892003/MR2/4981")),
    Recipe("US ABDOMEN", "US", "ABDOMEN", ("examples_ybr_color.dcm",)),
)

GIVEN = ("Alex", "Sam", "Robin", "Jordan", "Casey", "Morgan", "Riley", "Jamie", "Avery",
         "Quinn", "Taylor", "Rowan", "Charlie", "Emerson", "Finley", "Harper", "Kai", "Noa")
FAMILY = ("Ashdown", "Birchley", "Corrow", "Dunmere", "Elsworth", "Fernhill", "Galloway",
          "Hartwell", "Ivesdale", "Juniper", "Kestrel", "Lindqvist", "Marlowe", "Northcott",
          "Oakhurst", "Pembrook", "Quarry", "Redfern", "Stanwick", "Thistle")

# Attributes that identify people or places in the source files; the demo drops them.
DROPPED = ("OtherPatientIDs", "OtherPatientNames", "PatientAddress", "InstitutionAddress",
           "PatientTelephoneNumbers", "MilitaryRank", "EthnicGroup", "PatientComments",
           "DeviceSerialNumber", "StationName", "RequestAttributesSequence",
           "ReferencedStudySequence", "ReferencedPatientSequence", "PerformedProcedureStepID")

DEMO_MRN_PREFIX = "DEMO"
DEMO_INSTITUTION = "Consentry Demo Hospital"


@dataclass(frozen=True)
class SyntheticPatient:
    mrn: str
    name: str  # DICOM PN: Family^Given
    birth_date: date
    sex: str


def synthetic_patients(count: int, *, seed: int = 2026) -> list[SyntheticPatient]:
    rng = random.Random(seed)
    patients = []
    for number in range(1, count + 1):
        patients.append(SyntheticPatient(
            mrn=f"{DEMO_MRN_PREFIX}{number:05d}",
            name=f"{rng.choice(FAMILY)}^{rng.choice(GIVEN)}",
            birth_date=date(1940, 1, 1) + timedelta(days=rng.randrange(365 * 80)),
            sex=rng.choice("FM"),
        ))
    return patients


def _blank_person_names(ds: pydicom.Dataset) -> None:
    def blank(dataset, element):
        if element.VR == "PN":
            element.value = ""

    ds.walk(blank)


def write_study(*, out_dir: Path, patient: SyntheticPatient, recipe: Recipe,
                study_date: date, accession: str) -> list[Path]:
    """Write one synthetic study (one series) and return its files."""
    study_uid, series_uid = generate_uid(), generate_uid()
    written = []
    for number, template in enumerate(recipe.templates, start=1):
        ds = pydicom.dcmread(CORPUS / template)
        ds.remove_private_tags()
        _blank_person_names(ds)
        for keyword in DROPPED:
            if keyword in ds:
                delattr(ds, keyword)
        sop_uid = generate_uid()
        ds.PatientName = patient.name
        ds.PatientID = patient.mrn
        ds.PatientBirthDate = patient.birth_date.strftime("%Y%m%d")
        ds.PatientSex = patient.sex
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = sop_uid
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        ds.AccessionNumber = accession
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = study_date.strftime("%Y%m%d")
        ds.StudyID = accession[-6:]
        ds.StudyDescription = recipe.description
        ds.SeriesDescription = recipe.description
        ds.Modality = recipe.modality
        ds.BodyPartExamined = recipe.body_part
        ds.SeriesNumber = 1
        ds.InstanceNumber = number
        ds.InstitutionName = DEMO_INSTITUTION
        target = out_dir / patient.mrn / study_uid / f"{number:04d}.dcm"
        target.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(target, enforce_file_format=True)
        written.append(target)
    return written


def write_hospital(*, out_dir: Path, patients: list[SyntheticPatient], seed: int = 2026
                   ) -> list[Path]:
    """Two or three studies per patient; the first patient gets a head CT and a chest CR."""
    rng = random.Random(seed)
    files: list[Path] = []
    accession = 100000
    today = date(2026, 11, 1)
    for index, patient in enumerate(patients):
        recipes = ([RECIPES[0], RECIPES[3], RECIPES[4]] if index == 0
                   else rng.sample(RECIPES, rng.choice((2, 3))))
        for recipe in recipes:
            accession += 1
            files += write_study(
                out_dir=out_dir, patient=patient, recipe=recipe,
                study_date=today - timedelta(days=rng.randrange(5 * 365)),
                accession=f"ACC{accession}",
            )
    return files
