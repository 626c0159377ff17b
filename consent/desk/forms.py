"""The desk's forms parse and validate input; the services do the writing."""

from django import forms
from django.core.exceptions import ValidationError

from consent.models import ConsentForm, Decision, Purpose, ScopeKind, Source
from consent.services import normalise_scope

DATE_HINT = "A date (2026-03-02) or a date and time (2026-03-02 14:30). Empty means now."
DATE_ERROR = "Enter a date like 2026-03-02, or a date and time like 2026-03-02 14:30."


class InviteForm(forms.Form):
    email = forms.EmailField(label="Patient's email address")


class SearchForm(forms.Form):
    q = forms.CharField(label="MRN, name, accession number or StudyInstanceUID",
                        max_length=200)


class PaperConsentForm(forms.Form):
    """A consent given on paper or verbally, as staff record it."""

    purpose = forms.ChoiceField()
    decision = forms.ChoiceField(choices=Decision.choices)
    scope_kind = forms.ChoiceField(choices=ScopeKind.choices, initial=ScopeKind.ALL)
    scope_value = forms.CharField(
        max_length=64, required=False,
        widget=forms.TextInput(attrs={"list": "scope-terms", "autocomplete": "off"}),
        help_text="Empty for all studies; a StudyInstanceUID; a kind of scan (CT, MR, XRAY "
                  "…, or MRI, X-ray, ultrasound); or a body region (HEAD, CHEST, SPINE …). "
                  "Anything else is refused with the nearest terms.")
    source = forms.ChoiceField(choices=[(Source.PAPER, "Paper form"),
                                        (Source.VERBAL, "Verbal, witnessed")])
    form_version = forms.ModelChoiceField(queryset=ConsentForm.objects.order_by("-version"),
                                          empty_label=None, label="Form version shown")
    witness = forms.CharField(max_length=200, required=False,
                              help_text="Needed for a verbal consent: who heard it.")
    effective_from = forms.DateTimeField(required=False, help_text=DATE_HINT,
                                         error_messages={"invalid": DATE_ERROR})
    expires_at = forms.DateTimeField(
        required=False, error_messages={"invalid": DATE_ERROR},
        help_text="A date (2027-03-02) or a date and time. Empty means it never expires.")
    proxy_name = forms.CharField(max_length=200, required=False,
                                 label="Signed by (if not the patient)")
    proxy_relationship = forms.CharField(max_length=64, required=False,
                                         label="Relationship to the patient")
    scanned_form = forms.FileField(required=False, label="Scanned form (PDF, PNG or JPEG)")

    def __init__(self, *args, patient=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.patient = patient
        self.fields["purpose"].choices = [(p.code, p.name) for p in
                                          Purpose.objects.order_by("position", "code")]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("source") == Source.VERBAL and not cleaned.get("witness"):
            self.add_error("witness", "A verbal consent needs a witness.")
        if "scope_kind" in cleaned and self.patient is not None:
            # Turned into the stored code here (MRI -> MR) so the clerk sees what is kept.
            try:
                cleaned["scope_value"] = normalise_scope(
                    patient=self.patient, scope_kind=cleaned["scope_kind"],
                    scope_value=cleaned.get("scope_value", ""))
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    self.add_error(field if field in self.fields else None, errors)
        return cleaned
