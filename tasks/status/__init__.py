"""`./domus status`: what the next build would do to every image and xl config, and why.

items.py reads what each doit task is made of, record.py keeps what each was last built
from, judge.py compares the two, and show.py prints the answer.
"""
