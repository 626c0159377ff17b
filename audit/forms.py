import re
from datetime import timedelta

from django import forms

from audit.models import AuditEvent, Outcome

DATE_HINT = "A date (2026-03-02) or a date and time (2026-03-02 14:30), in UTC."
DATE_ERROR = "Enter a date like 2026-03-02, or a date and time like 2026-03-02 14:30."
_DATE_ONLY = re.compile(r"^\s*\d{4}-\d{2}-\d{2}\s*$")


class UntilField(forms.DateTimeField):
    """An end of a range. A date alone means the whole of that day (up to the next
    midnight, excluded), so From = Until = one day finds that day's events."""

    def to_python(self, value):
        moment = super().to_python(value)
        if moment is not None and isinstance(value, str) and _DATE_ONLY.match(value):
            moment = moment + timedelta(days=1)
        return moment


def _dates(since_label: str = "From (UTC)", until_label: str = "Until (UTC)",
           required: bool = False) -> tuple[forms.Field, forms.Field]:
    errors = {"invalid": DATE_ERROR, "required": "Enter a date, for example 2026-03-02."}
    return (forms.DateTimeField(required=required, label=since_label, help_text=DATE_HINT,
                                error_messages=errors),
            UntilField(required=required, label=until_label, error_messages=errors,
                       help_text="A date alone includes the whole of that day."))


def action_choices() -> list[tuple[str, str]]:
    """Every kind of event the ledger holds, and each family of them ("consent.*" finds
    consent.recorded, consent.withdrawn …), to choose from instead of typing codes."""
    actions = sorted(AuditEvent.objects.order_by().values_list("action", flat=True).distinct())
    families = sorted({a.split(".", 1)[0] for a in actions if "." in a})
    return [("", "any"), *((f"{f}.*", f"{f} (all)") for f in families),
            *((a, a) for a in actions)]


def purpose_choices() -> list[tuple[str, str]]:
    codes = sorted(AuditEvent.objects.exclude(purpose_code="").order_by()
                   .values_list("purpose_code", flat=True).distinct())
    return [("", "any"), *((c, c) for c in codes)]


def dataset_choices() -> list[tuple[str, str]]:
    """Each dataset the ledger mentions, by its name (two datasets may share a name, so
    its number follows), sorted by name; one whose row is gone is named by its number."""
    from audit.registry import dataset_labels

    refs = list(AuditEvent.objects.exclude(dataset_ref="").order_by()
                .values_list("dataset_ref", flat=True).distinct())
    names = dataset_labels(refs)
    labelled = [(ref, f"{names[ref]} (#{ref})" if ref in names else f"Dataset #{ref}")
                for ref in refs]
    return [("", "any"), *sorted(labelled, key=lambda c: (c[1].casefold(), c[0]))]


class EventSearchForm(forms.Form):
    since, until = _dates()
    actor = forms.CharField(max_length=150, required=False)
    action = forms.ChoiceField(required=False)
    outcome = forms.ChoiceField(choices=[("", "any"), *Outcome.choices], required=False)
    patient_mrn = forms.CharField(max_length=64, required=False, label="Patient MRN")
    study_uid = forms.CharField(max_length=64, required=False, label="StudyInstanceUID")
    dataset = forms.ChoiceField(required=False, error_messages={
        "invalid_choice": "No event mentions this dataset. Choose one from the list."})
    purpose = forms.ChoiceField(required=False)
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["action"].choices = action_choices()
        self.fields["purpose"].choices = purpose_choices()
        self.fields["dataset"].choices = dataset_choices()

    def clean_patient_mrn(self) -> str:
        return self.cleaned_data["patient_mrn"].strip()


class DisclosureForm(forms.Form):
    mrn = forms.CharField(max_length=64, label="Patient MRN",
                          help_text="Capitals or not, as on the patient's record.")

    def clean_mrn(self) -> str:
        from audit.registry import patient_refs_for_mrn

        mrn = self.cleaned_data["mrn"].strip()
        # "No disclosures" must mean the patient exists and has none, never a typo.
        if not patient_refs_for_mrn(mrn):
            raise forms.ValidationError("No patient has this MRN. Check it and try again.")
        return mrn


class ExportForm(forms.Form):
    since, until = _dates(required=True)
    format = forms.ChoiceField(choices=[("csv", "CSV"), ("fhir", "FHIR R4 AuditEvent (JSON)")])

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("since") and cleaned.get("until") and cleaned["since"] >= cleaned["until"]:
            self.add_error("until", "“Until” must be after “From”.")
        return cleaned
