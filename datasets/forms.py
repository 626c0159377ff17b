"""Forms parse the steward's input; datasets.exports.dataset_create validates and writes."""

from django import forms
from django.utils.translation import gettext_lazy as _

from consent.models import Purpose
from datasets.deid import Option
from datasets.delivery import destination_names
from datasets.models import BurnedInText, Enforcement

OPTION_LABELS = {
    Option.MODIFIED_DATES: "Keep intervals between dates (dates shifted per patient)",
    Option.PATIENT_CHARACTERISTICS: "Keep age, sex, size and weight",
    Option.DEVICE_IDENTITY: "Keep device identity (manufacturer, model, serial)",
    Option.CLEAN_DESCRIPTORS: "Keep descriptions, cleaned of identifying text",
}


class DatasetForm(forms.Form):
    name = forms.CharField(max_length=200)
    purpose = forms.ModelChoiceField(queryset=Purpose.objects.order_by("position", "code"),
                                     to_field_name="code", empty_label=None)
    recipient = forms.CharField(max_length=200, help_text="Who receives the files")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    enforcement = forms.ChoiceField(choices=Enforcement.choices, initial=Enforcement.EXCLUDE)
    irb_waiver = forms.CharField(label="IRB waiver number", max_length=100, required=False)
    approving_body = forms.CharField(max_length=200, required=False)
    approver = forms.CharField(max_length=200, required=False)
    study_uids = forms.CharField(
        label="StudyInstanceUIDs", required=False, widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One per line. Leave empty to select by the query below.")
    modality = forms.CharField(max_length=16, required=False, help_text="e.g. CT, MR, CR")
    body_part = forms.CharField(max_length=16, required=False, help_text="e.g. CHEST, KNEE")
    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    min_age = forms.IntegerField(min_value=0, max_value=150, required=False,
                                 label="Youngest age at the study")
    max_age = forms.IntegerField(min_value=0, max_value=150, required=False,
                                 label="Oldest age at the study")
    deid_options = forms.MultipleChoiceField(
        choices=[(o, OPTION_LABELS[o]) for o in Option.ALL], required=False,
        widget=forms.CheckboxSelectMultiple, label="De-identification options",
        initial=[Option.MODIFIED_DATES, Option.PATIENT_CHARACTERISTICS])
    defaced_upstream = forms.BooleanField(
        required=False, label="Head scans were defaced before registration",
        help_text="Only tick this if a defacing tool really ran: 3D head scans are left out "
                  "otherwise.")

    burned_in_text = forms.ChoiceField(
        choices=BurnedInText.choices, initial=BurnedInText.EXCLUDE, required=False,
        label="When text is found burned into an image",
        help_text="Ultrasound, secondary captures and the like are read for text in their "
                  "pixels before they may leave.")

    def selection(self) -> dict:
        data = self.cleaned_data
        uids = [line.strip() for line in data["study_uids"].splitlines() if line.strip()]
        if uids:
            return {"study_uids": uids}
        return {key: (value.isoformat() if hasattr(value, "isoformat") else value)
                for key in ("modality", "body_part", "date_from", "date_to", "min_age",
                            "max_age")
                if (value := data.get(key)) not in (None, "")}

    def service_arguments(self) -> dict:
        data = self.cleaned_data
        return {key: data[key] for key in (
            "name", "purpose", "recipient", "description", "enforcement", "irb_waiver",
            "approving_body", "approver", "deid_options", "defaced_upstream",
            "burned_in_text")
        } | {"selection": self.selection(),
             "burned_in_text": data["burned_in_text"] or BurnedInText.EXCLUDE}


class DestinationForm(forms.Form):
    """Where the dataset's next versions are sent: a name configured in
    CONSENTRY_DESTINATIONS, or none (versions are only zipped)."""

    destination = forms.ChoiceField(required=False, error_messages={
        "invalid_choice": _("%(value)s is not one of the configured destinations.")})

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Read when the form is made: the configuration is the list, not a copy of it.
        self.fields["destination"].choices = [("", _("None (zip only)"))] + [
            (name, name) for name in destination_names()]
