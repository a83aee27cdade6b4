"""One module per study: ``STUDY = harness.studies.Study(...)`` with variants, seeds and the paper's numbers."""
