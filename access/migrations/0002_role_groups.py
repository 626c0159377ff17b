from django.db import migrations

# The roles are Django groups (access.roles.Role), so admins manage who holds them as usual.
ROLES = ("patient", "staff", "steward", "auditor", "privacy-officer")


def create_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name in ROLES:
        Group.objects.get_or_create(name=name)


class Migration(migrations.Migration):
    dependencies = [("access", "0001_initial"), ("auth", "0012_alter_user_first_name_max_length")]

    operations = [migrations.RunPython(create_groups, migrations.RunPython.noop)]
