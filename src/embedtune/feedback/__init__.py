"""Search feedback: sessions, the results they showed and the clicks, released into batches."""
