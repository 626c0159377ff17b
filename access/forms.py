"""Forms parse and validate input; the token services do the writing."""

from django import forms

from access.models import TokenScope


class ApiTokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Who uses it, e.g. 'PACS router'")
    scopes = forms.MultipleChoiceField(choices=TokenScope.choices,
                                       widget=forms.CheckboxSelectMultiple)
    expires_at = forms.DateTimeField(required=False, help_text="Empty: never expires")

    def __init__(self, *args, allowed: frozenset[str], **kwargs):
        super().__init__(*args, **kwargs)
        # Only what the person's roles allow is offered; the service checks it again.
        self.fields["scopes"].choices = [(value, label) for value, label in TokenScope.choices
                                         if value in allowed]


class SecondFactorForm(forms.Form):
    code = forms.CharField(label="Code", max_length=32, strip=True,
                           widget=forms.TextInput(attrs={"autocomplete": "one-time-code",
                                                         "inputmode": "text"}))
