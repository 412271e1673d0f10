import pytest

from tasks.pii import RedactConfig, Redactor


@pytest.fixture(scope="session")
def redactor():
    return Redactor(RedactConfig(workers=1))
