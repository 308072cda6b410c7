"""`make bench`: Frontdesk's benchmarks, each run side by side with its baseline in the same process and run."""
