"""The floor for a commit that finds one changed file: a bare stat walk.

``python bench/scandir_walk.py TREE`` lstat()s every path under TREE with
``os.scandir`` (one getdents per directory, one lstat per entry, nothing
else) and prints how many it saw.  A one-file commit has to do at least this
much to find the change, plus loading its snapshot and writing the layer.
"""

import os
import sys


def walk(top: str) -> int:
    n = 0
    stack = [top]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                entry.stat(follow_symlinks=False)
                n += 1
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return n


if __name__ == "__main__":
    print(walk(sys.argv[1]))
