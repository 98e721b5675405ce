"""Test-session settings. The suite runs on two workers (`pytest -n 2 --dist loadfile`, the README's command): each
file stays on one worker, so module-scoped fixtures are built once; the slowest files are handed out first, so
that neither worker is left with a long file at the end."""

SLOWEST_FIRST = ("test_sweep.py", "test_ondevice.py", "test_seeds.py", "test_resume.py", "test_study.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: order within a file is kept
