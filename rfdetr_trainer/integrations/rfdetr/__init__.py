"""rfdetr integration: the model registry, Lightning wiring, inference and export. Imports rfdetr lazily."""
