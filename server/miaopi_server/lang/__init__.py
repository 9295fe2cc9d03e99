"""The condition language of rule files: tokenizer and parser (ast), the compiler to
durable_rules conditions and probes, and the reference semantics the compiler is tested against."""
