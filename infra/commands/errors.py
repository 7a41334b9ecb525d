"""What `rexbert` prints when a command fails: one line for a failure the user can fix, the traceback for a bug.

Expected failures are bad input, not bugs: a config that does not validate, an output the stage may not write,
a missing or unreadable file, input a stage cannot use (a `ValueError`: an empty corpus, a malformed task file),
counts that do not add up. Engines wrap them: Ray in `RayTaskError` and Ray Train's `TrainingFailedError`,
Spark in a Java exception whose root cause is a Java I/O error or a Python worker's traceback (hundreds of
lines of Java stack). `problem_of` looks through those wrappers for the one line that names the problem.
Everything else is unexpected and keeps its traceback.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator

from infra.core import fs
from infra.core.config import ConfigError
from infra.core.manifest import AccountingError
from infra.core.outputs import OutputError

EXPECTED: tuple[type[BaseException], ...] = (
    ConfigError, OutputError, AccountingError, fs.FileSystemError,
    FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError,
    ValueError,  # raised for input a stage cannot use (UnicodeDecodeError, JSONDecodeError, ArrowInvalid too)
)

# Root causes of a Spark (JVM) failure that are bad input, not bugs.
JAVA_EXPECTED = {
    "java.io.FileNotFoundException", "java.nio.file.NoSuchFileException", "java.nio.file.AccessDeniedException",
    "java.nio.file.NotDirectoryException", "java.nio.file.FileAlreadyExistsException",
    "org.apache.hadoop.fs.FileAlreadyExistsException", "org.apache.hadoop.fs.PathIsNotDirectoryException",
    "org.apache.hadoop.mapred.InvalidInputException", "org.apache.hadoop.mapreduce.lib.input.InvalidInputException",
    "org.apache.hadoop.security.AccessControlException", "org.apache.spark.SparkFileNotFoundException",
}
JAVA_PYTHON_WORKER = "org.apache.spark.api.python.PythonException"
# Spark SQL error conditions that name bad input (AnalysisException and friends).
SPARK_CONDITIONS = {"PATH_NOT_FOUND", "UNABLE_TO_INFER_SCHEMA", "FAILED_READ_FILE"}
# The last `Name: message` line of a Python traceback (a Spark Python worker's, carried as text).
_TRACEBACK_LAST = re.compile(r"^(?:[\w.]+\.)?(\w+(?:Error|Exception)): (.+)$")


def one_line(text: str) -> str:
    """A message on one line: its non-empty lines joined (a config error lists one field per line)."""
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _message(err: BaseException) -> str:
    if isinstance(err, OSError) and err.filename and str(err).startswith("[Errno"):
        return f"{err.strerror}: {err.filename}"  # os's own "[Errno 2] No such file..." without the errno
    return one_line(str(err)) or type(err).__name__


def _expected_names() -> set[str]:
    """Class names of every expected exception type loaded now, subclasses included (for tracebacks as text)."""
    names, todo = set(), list(EXPECTED)
    while todo:
        cls = todo.pop()
        if cls.__name__ not in names:
            names.add(cls.__name__)
            todo.extend(cls.__subclasses__())
    return names


def _from_python_traceback(text: str) -> str | None:
    """The last line of a Python traceback kept as text, when it names an expected exception type."""
    for line in reversed(text.strip().splitlines()):
        match = _TRACEBACK_LAST.match(line.strip())
        if match:
            return match.group(2).strip() if match.group(1) in _expected_names() else None
    return None


def _from_java(java_exception) -> str | None:
    """The deepest link of a JVM exception's cause chain (through py4j) that is bad input: its first line."""
    chain = [java_exception]
    while chain[-1].getCause() is not None and len(chain) < 50:  # Spark nests task failures a few levels deep
        chain.append(chain[-1].getCause())
    for link in reversed(chain):
        name = link.getClass().getName()
        text = str(link.toString())
        if name == JAVA_PYTHON_WORKER:
            return _from_python_traceback(text)
        if name in JAVA_EXPECTED:
            first = text.strip().splitlines()[0] if text.strip() else name
            return first.split(": ", 1)[1] if first.startswith(name + ": ") else first
    return None


def _wrapped(err: BaseException) -> Iterator[BaseException]:
    """The exceptions an engine wrapper carries (Ray tasks, Ray Train worker groups and controller)."""
    if "ray" in sys.modules:
        from ray.exceptions import RayTaskError

        if isinstance(err, RayTaskError) and err.cause is not None:
            yield err.cause
    failures = getattr(err, "worker_failures", None)  # ray.train WorkerGroupError: {rank: exception}
    if isinstance(failures, dict):
        yield from failures.values()
    for attribute in ("controller_failure", "_base_exc"):  # ray.train ControllerError, UserExceptionWithTraceback
        inner = getattr(err, attribute, None)
        if isinstance(inner, BaseException):
            yield inner
    if type(err).__name__ == "UserCodeException" and err.__cause__ is not None:  # Ray Data's wrapper
        yield err.__cause__


def _from_spark(err: BaseException) -> str | None:
    """Spark failures seen from Python: py4j's Py4JJavaError and pyspark's captured exceptions."""
    java = getattr(err, "java_exception", None)
    if java is not None and type(err).__name__ == "Py4JJavaError":
        return _from_java(java)
    if "pyspark" not in sys.modules:
        return None
    from pyspark.errors.exceptions.captured import CapturedException, PythonException

    if isinstance(err, PythonException):
        return _from_python_traceback(str(err))
    if isinstance(err, CapturedException):
        condition = err.getCondition() if hasattr(err, "getCondition") else err.getErrorClass()
        if condition in SPARK_CONDITIONS:
            return one_line(str(err).split("\n\nJVM stacktrace:", 1)[0])
        origin = getattr(err, "_origin", None)
        return _from_java(origin) if origin is not None else None
    return None


def problem_of(err: BaseException, depth: int = 0) -> str | None:
    """The one line naming `err` when it is an expected failure (looking through engine wrappers), else None."""
    if depth > 5:
        return None
    for inner in _wrapped(err):  # before the type check: RayTaskError(ValueError) is a ValueError too
        found = problem_of(inner, depth + 1)
        if found is not None:
            return found
    spark = _from_spark(err)
    if spark is not None:
        return spark
    if isinstance(err, EXPECTED) and not _is_wrapper(err):
        return _message(err)
    return None


def _is_wrapper(err: BaseException) -> bool:
    """An engine wrapper whose own text is a traceback: never printed as the one line."""
    return next(_wrapped(err), None) is not None
