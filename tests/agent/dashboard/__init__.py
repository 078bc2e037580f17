"""Tests of agent/dashboard/: the web app's API and security, and the page in a real headless Chromium."""
