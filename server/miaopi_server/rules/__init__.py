"""Rule file -> compiled item: the model, every field type (fieldtypes), the YAML loader with
located diagnostics, the compiler to engine rules with named assembly plans, a rules directory,
the JSON Schema, and lint."""
