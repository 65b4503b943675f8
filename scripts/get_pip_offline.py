"""Offline stand-in for the get-pip.py bootstrap script that ansible-test downloads.

ansible-test fetches get-pip.py from ci-files.testing.ansible.com, which this project's
machines cannot reach. This script does the same job from what they can reach: pip from
the interpreter's own ensurepip, then the pinned pip asked for, from the package index.
scripts/sanity installs it into ansible-test's cache under the name ansible-test looks for.
"""

import subprocess
import sys

# get-pip.py options that pip itself does not know.
OWN_OPTIONS = {"--no-setuptools", "--no-wheel"}

subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
subprocess.check_call([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--quiet"]
                      + [arg for arg in sys.argv[1:] if arg not in OWN_OPTIONS])
