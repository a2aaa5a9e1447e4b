"""Fair share: who may read which dataset, what it costs, and who is paid for it."""
