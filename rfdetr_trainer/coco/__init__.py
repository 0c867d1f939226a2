"""Pure-Python COCO domain: schema, io, validation, merge and split. Imports no torch or rfdetr."""
