"""Django's ``SessionTestsMixin`` against ``ferrosession.django.store`` (copied into the
extracted Django tests as ``sessions_tests/ferrosession_store.py`` by run_upstream.py):
on a ``MemoryStorage`` and on a ``DirectoryStorage``."""

import shutil
import tempfile

from django.test import SimpleTestCase, override_settings

import ferrosession as fs
from ferrosession.django.store import SessionStore

from .tests import SessionTestsMixin

_FOLDER = tempfile.mkdtemp(prefix="ferrosession-django-")


@override_settings(FERROSESSION_STORAGE=fs.MemoryStorage())
class FerrosessionMemoryStoreTests(SessionTestsMixin, SimpleTestCase):
    backend = SessionStore


@override_settings(FERROSESSION_STORAGE=fs.DirectoryStorage(_FOLDER, cached=False))
class FerrosessionDirectoryStoreTests(SessionTestsMixin, SimpleTestCase):
    backend = SessionStore

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(_FOLDER, ignore_errors=True)
