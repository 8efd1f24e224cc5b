"""The live queue workers: who is running, on which queue, doing what."""
