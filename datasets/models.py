# Datasets, exports and de-identification arrive with the export issue.
