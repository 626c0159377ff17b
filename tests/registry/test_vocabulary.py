"""registry/vocabulary.py: the tables' provenance and size, every alias, refusals with the
nearest terms, and how a series' anatomy is read (tag, code, description, unknown)."""

import json

import pytest

from registry import vocabulary
from registry.vocabulary import AnatomySource, UnknownTerm, anatomy_of

DATA = vocabulary.DATA


# --- provenance and size -----------------------------------------------------------------

def test_the_tables_name_their_source_and_edition():
    modalities = json.loads((DATA / "modalities.json").read_text())
    anatomy = json.loads((DATA / "anatomy.json").read_text())
    assert "CID 29" in modalities["source"] and "C.7.3.1.1.1" in modalities["source"]
    assert "Annex L" in anatomy["source"] and "2023b" in anatomy["source"]
    assert "pydicom 3.0" in anatomy["source"]
    readme = (DATA / "README.md").read_text()
    for words in ("PS3.16", "Annex L", "CID 29", "CID 4031", "2023b", "licen",
                  "build_vocabulary.py"):
        assert words in readme


def test_the_tables_have_the_rows_they_were_built_with():
    modalities = json.loads((DATA / "modalities.json").read_text())
    anatomy = json.loads((DATA / "anatomy.json").read_text())
    assert len(modalities["modalities"]) == 51
    assert [g["code"] for g in modalities["groups"]] == ["XRAY"]
    assert len(anatomy["regions"]) == 9
    assert len(anatomy["parts"]) == 134
    assert sum(1 for p in anatomy["parts"] if p["term"]) == 118
    # Every CID 4031 concept but one (Phantom: not a person) is in the table.
    assert sum(1 for p in anatomy["parts"] if p["code"]["in_cid_4031"]) == 113


def test_every_part_lies_in_known_regions_and_codes_are_unique():
    anatomy = json.loads((DATA / "anatomy.json").read_text())
    codes = [p["code"]["value"] for p in anatomy["parts"]]
    assert len(codes) == len(set(codes))
    for part in anatomy["parts"]:
        assert part["regions"] and set(part["regions"]) <= set(vocabulary.regions())


@pytest.mark.parametrize("term", ["HEAD", "BRAIN", "SKULL", "ORBIT", "EYE", "EAR", "FACE",
                                  "JAW", "TMJ", "NOSE", "HEADNECK", "IAC", "MANDIBLE",
                                  "MAXILLA", "SELLA", "CEREBELLUM", "WHOLEBODY"])
def test_head_and_brain_covers_its_parts(term):
    assert "HEAD" in vocabulary.regions_of_term(term)


@pytest.mark.parametrize(("term", "regions"), [
    ("HEADNECK", ("HEAD", "NECK")), ("CHESTABDPELVIS", ("CHEST", "ABDOMEN", "PELVIS")),
    ("CSPINE", ("NECK", "SPINE")), ("KNEE", ("LOWERLIMB",)), ("BREAST", ("BREAST",)),
    ("HIP", ("PELVIS", "LOWERLIMB")), ("EXTREMITY", ("UPPERLIMB", "LOWERLIMB")),
])
def test_a_term_that_spans_regions_lies_in_each(term, regions):
    assert set(vocabulary.regions_of_term(term)) == set(regions)


# --- what people type ---------------------------------------------------------------------

ALIASES = json.loads((DATA / "modalities.json").read_text())["aliases"]


@pytest.mark.parametrize(("alias", "code"), sorted(ALIASES.items()))
def test_every_modality_alias_gives_its_code(alias, code):
    assert vocabulary.canonical_modality(alias) == code
    assert vocabulary.canonical_modality(f"  {alias.lower()} ") == code


@pytest.mark.parametrize(("alias", "code"), sorted(vocabulary.REGION_ALIASES.items()))
def test_every_region_alias_gives_its_region(alias, code):
    assert vocabulary.canonical_region(alias) == code
    assert vocabulary.canonical_region(alias.title()) == code


@pytest.mark.parametrize("code", sorted(vocabulary.modalities()))
def test_every_modality_code_is_its_own_canonical_form(code):
    assert vocabulary.canonical_modality(code.lower()) == code


@pytest.mark.parametrize(("code", "label"), sorted(vocabulary.regions().items()))
def test_every_region_is_known_by_code_and_by_label(code, label):
    assert vocabulary.canonical_region(code.lower()) == code
    assert vocabulary.canonical_region(label.upper()) == code


def test_x_ray_is_a_group_covering_the_plain_radiograph_modalities():
    assert vocabulary.canonical_modality("X-ray") == "XRAY"
    assert vocabulary.modality_covers("XRAY") == ("CR", "DX", "RG")
    assert vocabulary.modality_covers("CT") == ("CT",)


@pytest.mark.parametrize(("typed", "suggested"), [
    ("BRAINZ", "HEAD"), ("chst", "CHEST"), ("abdomn", "ABDOMEN"), ("legz", "LOWERLIMB"),
])
def test_an_unknown_region_is_refused_with_the_nearest_terms(typed, suggested):
    with pytest.raises(UnknownTerm) as refused:
        vocabulary.canonical_region(typed)
    assert suggested in [code for code, _ in refused.value.suggestions]
    assert "did you mean" in str(refused.value)


def test_a_part_inside_a_region_is_refused_and_pointed_to_its_region():
    with pytest.raises(UnknownTerm, match="part of a body region") as refused:
        vocabulary.canonical_region("knee")
    assert refused.value.suggestions == [("LOWERLIMB", "legs, knees and feet")]


def test_a_phrase_spanning_two_regions_is_refused_and_both_are_named():
    with pytest.raises(UnknownTerm, match="more than one region") as refused:
        vocabulary.canonical_region("head and neck")
    assert [code for code, _ in refused.value.suggestions] == ["HEAD", "NECK"]


@pytest.mark.parametrize(("typed", "suggested"), [("MRII", "MR"), ("CTT", "CT"),
                                                  ("ultrasond", "US")])
def test_an_unknown_modality_is_refused_with_the_nearest_terms(typed, suggested):
    with pytest.raises(UnknownTerm) as refused:
        vocabulary.canonical_modality(typed)
    assert suggested in [code for code, _ in refused.value.suggestions]


@pytest.mark.parametrize("typed", ["", "   ", "CHEST", "%", "'; DROP TABLE x; --",
                                   "C" * 500, "\x00", "héad"])
def test_broken_input_is_refused_as_a_modality(typed):
    with pytest.raises(UnknownTerm):
        vocabulary.canonical_modality(typed)


@pytest.mark.parametrize("typed", ["", "   ", "CT", "%", "'; DROP TABLE x; --", "H" * 500,
                                   "\x00", "|HEAD|"])
def test_broken_input_is_refused_as_a_region(typed):
    with pytest.raises(UnknownTerm):
        vocabulary.canonical_region(typed)


# --- what a series shows ------------------------------------------------------------------

@pytest.mark.parametrize(("body_part", "regions"), [
    ("BRAIN", ("HEAD",)), ("SKULL", ("HEAD",)), ("head", ("HEAD",)),
    ("HEAD NECK", ("HEAD", "NECK")), ("SKIN", ()), ("L_SPINE", ("SPINE",)),
    ("THORAX", ("CHEST",)), ("SINUS", ("HEAD",)),
])
def test_body_part_examined_comes_first(body_part, regions):
    anatomy = anatomy_of(body_part=body_part, region_codes=[("SCT", "72696002")],
                         texts=["CT CHEST"])
    if regions:
        assert (anatomy.source, anatomy.regions) == (AnatomySource.TAG, regions)
    else:  # not a term we know: the codes decide
        assert (anatomy.source, anatomy.regions) == (AnatomySource.CODE, ("LOWERLIMB",))


def test_anatomic_region_codes_come_next_in_snomed_ct_or_legacy_snomed_rt():
    brain = anatomy_of(body_part="", region_codes=[("SCT", "12738006")])
    legacy = anatomy_of(body_part="", region_codes=[("SRT", "T-A0100")])
    assert brain == legacy
    assert (brain.source, brain.parts, brain.regions) == ("code", ("BRAIN",), ("HEAD",))
    assert anatomy_of(body_part="", region_codes=[("SCT", "2095001")]).regions == ("HEAD",)


def test_descriptions_are_read_last_word_by_word():
    anatomy = anatomy_of(body_part="", texts=["CT CHEST/ABDOMEN", "", "PELVIC protocol"])
    assert anatomy.source == AnatomySource.DESCRIPTION
    assert anatomy.parts == ("CHEST", "ABDOMEN", "PELVIS")
    assert anatomy.regions == ("CHEST", "ABDOMEN", "PELVIS")
    assert anatomy.stored_regions == "|CHEST|ABDOMEN|PELVIS|"
    # Whole words only: "SURFACE" holds FACE, "HEADER" holds HEAD.
    assert anatomy_of(body_part="", texts=["SURFACE HEADER"]).source == "unknown"


def test_nothing_to_read_is_unknown_anatomy():
    for anatomy in (anatomy_of(body_part=""),
                    anatomy_of(body_part="SKIN", region_codes=[("SCT", "999999")],
                               texts=["SCOUT", "LOCALIZER"]),
                    anatomy_of(body_part="PHANTOM")):
        assert anatomy.source == AnatomySource.UNKNOWN
        assert anatomy.regions == () and anatomy.stored_regions == ""
