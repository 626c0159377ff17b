"""Dataset destinations become rows the ledger vouches for (datasets/vouched.py).

A row written before this has its ``dataset.destination_set`` event, which names the
destination and who set it but carries no digest, so ``verify_ledger`` would name every such
row as written behind the application's back. Here each row that is what its dataset's
newest ``dataset.destination_set`` event says (same name, set by the same actor) gets an
event vouching for it as it stands; a row that differs from its event, or has none, is left
unvouched, and ``verify_ledger`` names it. Nothing to undo: ledger events stay."""

from django.db import migrations

ACTION = "dataset.destination_set"


def vouch_existing(apps, schema_editor):
    from audit import codes, ledger
    from audit.ledger import Actor
    from audit.vouching import DETAILS_KEY, canonical_digest, vouched_details
    from datasets.vouched import DESTINATION, destination_canonical

    destinations = apps.get_model("datasets", "DatasetDestination")
    events = apps.get_model("audit", "AuditEvent")
    actor = Actor.system("migration datasets 0008 (destinations vouched)")
    for row in destinations.objects.select_related("dataset__purpose").order_by("pk"):
        newest = (events.objects.filter(action=ACTION, dataset_ref=str(row.dataset_id))
                  .order_by("-id").values_list("id", "actor_label", "details").first())
        if newest is None:
            continue
        event_id, label, details = newest
        if DETAILS_KEY in details or details.get("destination") != row.name \
                or label != row.set_by:
            continue
        ledger.record(
            action="dataset.destination_vouched", event_code=codes.APPLICATION_ACTIVITY,
            actor=actor, dataset_ref=row.dataset_id, purpose_code=row.dataset.purpose.code,
            details=vouched_details(
                {"destination": row.name, "as_set_by_event": event_id},
                {"table": DESTINATION, "id": row.pk,
                 "digest": canonical_digest(destination_canonical(row))}))


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0004_pendingseal_digest"),
        ("datasets", "0007_delivery"),
    ]

    operations = [
        migrations.RunPython(vouch_existing, migrations.RunPython.noop),
    ]
