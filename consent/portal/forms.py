"""The portal's forms parse and validate input; the services do the writing."""

from django import forms
from django.contrib.auth import password_validation

from consent.models import Decision, ScopeKind


class ChoiceChangeForm(forms.Form):
    purpose = forms.SlugField(max_length=64)
    decision = forms.ChoiceField(choices=Decision.choices)
    scope_kind = forms.ChoiceField(choices=ScopeKind.choices, initial=ScopeKind.ALL)
    scope_value = forms.CharField(max_length=64, required=False)


class SetPasswordForm(forms.Form):
    password1 = forms.CharField(label="New password", strip=False,
                                widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
                                help_text=password_validation.password_validators_help_text_html())
    password2 = forms.CharField(label="New password again", strip=False,
                                widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("password1") != cleaned.get("password2"):
            raise forms.ValidationError("The two passwords are not the same.")
        return cleaned
