"""The portal's forms parse and validate input; the services do the writing."""

from django import forms
from django.contrib.auth import password_validation

from consent.models import Decision, ScopeKind


class ChoiceChangeForm(forms.Form):
    """A change of choice. The exception form sends ``scope`` as "kind:value" from one list
    whose every option is a valid pair, so no script is needed to keep "for" and "which"
    consistent; the other buttons send ``scope_kind`` and ``scope_value``."""

    purpose = forms.SlugField(max_length=64)
    decision = forms.ChoiceField(choices=Decision.choices)
    scope = forms.CharField(max_length=96, required=False)
    scope_kind = forms.ChoiceField(choices=ScopeKind.choices, required=False)
    scope_value = forms.CharField(max_length=64, required=False)

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("scope"):
            kind, _, value = cleaned["scope"].partition(":")
            if kind not in ScopeKind.values:
                raise forms.ValidationError("Unknown kind of exception.")
            cleaned["scope_kind"], cleaned["scope_value"] = kind, value
        cleaned["scope_kind"] = cleaned.get("scope_kind") or ScopeKind.ALL
        return cleaned


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
