from django import forms

from audit.models import Outcome


class EventSearchForm(forms.Form):
    since = forms.DateTimeField(required=False, label="From (UTC)")
    until = forms.DateTimeField(required=False, label="Until (UTC)")
    actor = forms.CharField(max_length=150, required=False)
    action = forms.CharField(max_length=64, required=False)
    outcome = forms.ChoiceField(choices=[("", "any"), *Outcome.choices], required=False)
    patient_mrn = forms.CharField(max_length=64, required=False, label="Patient MRN")
    study_uid = forms.CharField(max_length=64, required=False, label="StudyInstanceUID")
    dataset = forms.CharField(max_length=64, required=False)
    purpose = forms.CharField(max_length=64, required=False)
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)


class DisclosureForm(forms.Form):
    mrn = forms.CharField(max_length=64, label="Patient MRN")


class ExportForm(forms.Form):
    since = forms.DateTimeField(label="From (UTC)")
    until = forms.DateTimeField(label="Until (UTC)")
    format = forms.ChoiceField(choices=[("csv", "CSV"), ("fhir", "FHIR R4 AuditEvent (JSON)")])

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("since") and cleaned.get("until") and cleaned["since"] >= cleaned["until"]:
            raise forms.ValidationError("'From' must be before 'Until'.")
        return cleaned
