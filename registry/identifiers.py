"""Direct identifiers at rest: encrypted columns, and keyed blind indexes to find them.

A patient's name, MRN and birth date (and a study's accession number, an invitation's email)
are stored Fernet-encrypted by django-fernet-encrypted-fields, under the keys in
``CONSENTRY_IDENTIFIER_KEYS`` (newest first; older keys still decrypt, so a key can be
rotated and the rows re-encrypted by ``manage.py rotate_identifier_keys``).

Fernet is randomised, so the ciphertext cannot be compared in SQL. What is looked up is a
blind index: HMAC-SHA256, under the separate ``CONSENTRY_BLIND_INDEX_KEY``, of the
normalised value and the kind of value, stored in an indexed column. Equal values give
equal digests, so "patient by MRN" stays one index probe; without the key the digests say
nothing but which rows share a value.

Kinds of digest:
- ``mrn``: the MRN exactly as issued (registration's identity, unique per issuer);
- ``mrn-search``: the MRN case-folded without spaces (the desk's and the API's look-up);
- ``mrn-prefix``: each case-folded prefix of at least ``MRN_PREFIX_MIN`` characters, so a
  partial MRN finds the patient (issue 17). The leak is bounded: someone with the database
  but not the key learns only which patients share a prefix; see the README;
- ``name-start``: each word of the name (DICOM PN ``Family^Given``, "Given Family",
  "Family, Given"), case-folded and without accents, and each of its starts of at least
  ``NAME_START_MIN`` characters, so a name in any order, or the start of each word
  ("Lidd"), finds the patient. Never a substring from the middle: that would need n-grams,
  whose digests tell far more about a name;
- ``accession``: the accession number, case-folded without spaces.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import FieldError, ImproperlyConfigured
from django.db import models
from encrypted_fields.fields import (
    EncryptedCharField,
    EncryptedDateField,
    EncryptedEmailField,
    EncryptedFieldMixin,
)

MRN_PREFIX_MIN = 4
NAME_START_MIN = 3
# A search term longer than any stored identifier cannot match: refuse it early and plainly.
MAX_TERM = 200
_FERNET_PREFIX = "gAAAAA"  # every Fernet token starts with version byte 0x80 and a timestamp


@lru_cache(maxsize=8)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def fernet() -> MultiFernet:
    """The identifiers' cipher: encrypts under the first key, decrypts under any."""
    return _fernet(tuple(settings.CONSENTRY_IDENTIFIER_KEYS))


class _IdentifierMixin(EncryptedFieldMixin):
    """The library's field, keyed from Consentry's own setting rather than SECRET_KEY, and
    strict where the library is lenient:

    - an empty string is encrypted too, so a blank name reads back as '' (not None) and the
      column stays NOT NULL;
    - a value that is a Fernet token no configured key opens is an error, not shown as is
      (the library passes it through, which would put ciphertext on a page as a "name");
      a plaintext value (a row from before encryption) still reads, so the encrypting
      migration can read what it encrypts;
    - only ``isnull`` may be looked up in SQL: any other lookup would compare ciphertexts
      and silently find nothing. Search through the blind indexes instead.
    """

    @property
    def f(self) -> MultiFernet:  # type: ignore[override]
        return fernet()

    def get_prep_value(self, value: Any) -> Any:
        value = super(EncryptedFieldMixin, self).get_prep_value(value)
        if value is None:
            return None
        return self.f.encrypt(str(value).encode()).decode()

    def to_python(self, value: Any) -> Any:
        if (isinstance(value, str) and value.startswith(_FERNET_PREFIX)
                and not hasattr(self, "_already_decrypted")):
            try:
                value = self.f.decrypt(value.encode()).decode()
            except InvalidToken:
                raise ImproperlyConfigured(
                    f"{self.model.__name__}.{self.name} cannot be decrypted with any key in "
                    "CONSENTRY_IDENTIFIER_KEYS: was a key removed before the rows were "
                    "re-encrypted (manage.py rotate_identifier_keys)?") from None
        return super(EncryptedFieldMixin, self).to_python(value)

    def get_lookup(self, lookup_name: str):
        if lookup_name != "isnull":
            raise FieldError(
                f"{self.model.__name__}.{self.name} is encrypted: '{lookup_name}' cannot be "
                "compared in SQL; look it up through its blind index (registry/identifiers.py)")
        return super().get_lookup(lookup_name)


class IdentifierCharField(_IdentifierMixin, EncryptedCharField):
    pass


class IdentifierDateField(_IdentifierMixin, EncryptedDateField):
    pass


class IdentifierEmailField(_IdentifierMixin, EncryptedEmailField):
    pass


# --- normalising --------------------------------------------------------------------------

def _fold(text: str) -> str:
    """Case-folded, accents dropped (Dùnmere = dunmere), inner spaces removed."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"\s+", "", plain.casefold())


def name_tokens(name: str) -> set[str]:
    """The words of a person's name, whatever the order or notation: DICOM PN
    ``Dunmere^Taylor`` (and its ``=`` ideographic groups), "Taylor Dunmere",
    "Dunmere, Taylor"."""
    words = re.split(r"[\s\^,=;]+", name)
    return {_fold(w).strip(".'") for w in words if _fold(w).strip(".'")}


def name_starts(token: str) -> set[str]:
    """The word itself and each of its starts of at least NAME_START_MIN characters."""
    return {token} | {token[:n] for n in range(NAME_START_MIN, len(token))}


def search_term(mrn: str) -> str:
    return _fold(mrn)


def mrn_prefixes(mrn: str) -> set[str]:
    folded = _fold(mrn)
    return {folded[:n] for n in range(MRN_PREFIX_MIN, len(folded))}


# --- blind indexes ------------------------------------------------------------------------

def blind(kind: str, value: str) -> str:
    """HMAC-SHA256 (hex) of one kind of value under the blind-index key; '' for no value,
    so blank identifiers never match each other."""
    if not value:
        return ""
    return _blind(settings.CONSENTRY_BLIND_INDEX_KEY, kind, value)


@lru_cache(maxsize=4096)
def _blind(key: str, kind: str, value: str) -> str:
    # Cached: registration asks for the same patient's MRN digest once per file of a batch.
    # The key is part of the cache key, so a rotated key never returns an old digest.
    return hmac.new(key.encode(), f"{kind}\x1f{value}".encode(), hashlib.sha256).hexdigest()


def mrn_digest(mrn: str) -> str:
    """Registration's identity: the MRN exactly as the issuer wrote it."""
    return blind("mrn", mrn.strip())


def accession_digest(accession: str) -> str:
    return blind("accession", _fold(accession))


def patient_search_digests(*, mrn: str, name: str) -> set[str]:
    """Every digest that finds this patient at the desk: whole MRN, its prefixes, and each
    word of the name."""
    digests = {blind("mrn-search", search_term(mrn))}
    digests |= {blind("mrn-prefix", p) for p in mrn_prefixes(mrn)}
    digests |= {blind("name-start", start) for token in name_tokens(name)
                for start in name_starts(token)}
    digests.discard("")
    return digests


def query_digests(query: str) -> dict[str, Any]:
    """What a free-text search term may be, as digests: an MRN (whole or its start), an
    accession number, or a name whose every word must match."""
    folded = search_term(query)
    return {
        "mrn": blind("mrn-search", folded),
        "mrn_prefix": blind("mrn-prefix", folded) if len(folded) >= MRN_PREFIX_MIN else "",
        "accession": blind("accession", folded),
        "name_words": sorted({blind("name-start", t) for t in name_tokens(query)} - {""}),
    }


class BlindIndexField(models.CharField):
    """A column holding ``blind(kind, source)``, recomputed from the source attribute
    whenever the row is saved (``save`` and ``bulk_create`` both call ``pre_save``), so it
    cannot drift from the encrypted value it indexes."""

    def __init__(self, *args: Any, source: str = "", kind: str = "", **kwargs: Any) -> None:
        self.source, self.kind = source, kind
        kwargs.setdefault("max_length", 64)
        kwargs.setdefault("editable", False)
        kwargs.setdefault("blank", True)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs.update(source=self.source, kind=self.kind)
        for default in ("max_length", "editable", "blank"):
            kwargs.pop(default, None)
        return name, path, args, kwargs

    def pre_save(self, model_instance: models.Model, add: bool) -> str:
        value = digest_for(self.kind, getattr(model_instance, self.source) or "")
        setattr(model_instance, self.attname, value)
        return value


def digest_for(kind: str, value: str) -> str:
    if kind == "mrn":
        return mrn_digest(value)
    if kind == "accession":
        return accession_digest(value)
    raise ValueError(f"unknown blind index kind {kind!r}")
