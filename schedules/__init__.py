"""Kernel scheduling and tuning (MetaSchedule) will live here; until then every kernel is TVM's default loop nest."""
