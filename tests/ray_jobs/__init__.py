"""Tests of ray_jobs/."""
