"""Tests: unit, integration (real Spark local, real local Ray) and end-to-end."""
