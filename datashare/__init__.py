"""datashare: a zero-copy Apache Arrow object plane on Ray's object store."""
