"""Reading the data file of ``fastap fit``: .csv (through pandas), .npy, .npz.

Every problem the user can fix is a :class:`CommandError` whose message
names the file and, where there is one, the place in it: rows and columns
are counted as a text editor counts them (the first line of the file is
row 1, the first field of a line column 1), and a column with a header
name is called by it.
"""

import csv
import os
import re
import zipfile
import zlib
from typing import NamedTuple

import numpy as np

SUFFIXES = (".csv", ".npy", ".npz")

# Separators people use instead of the comma, with the option that reads them.
_OTHER_DELIMITERS = {";": "--delimiter ';'", "\t": "--delimiter tab", "|": "--delimiter '|'"}

_NPY_MAGIC = b"\x93NUMPY"


class CommandError(Exception):
    """An error the user can fix; its message is printed on one line."""


class UsageError(CommandError):
    """Options that contradict each other or do not apply to the input: a
    usage error (exit code 2, as argparse's own)."""


class Data(NamedTuple):
    """The samples read from a file.

    Attributes
    ----------
    values : ndarray of shape (n_samples, n_features)
        Numbers as stored (a memory map for a .npy file when asked).
    feature_names : list of str or None
        The CSV header's names of the chosen columns; None without a header.
    index_column : str or None
        The CSV column taken as the row index (not a feature), if any.
    row_names : list of str or None
        That column's fields, as written (the labels file repeats them).
    notes : tuple of str
        What was guessed about the file (a numeric header line, an index
        column), each with the option that decides otherwise.
    """

    values: np.ndarray
    feature_names: list = None
    index_column: str = None
    row_names: list = None
    notes: tuple = ()


def delimiter_character(text):
    r"""The delimiter a ``--delimiter`` value names ('tab' or '\t': a tab)."""
    if text in ("tab", "\\t", "\t"):
        return "\t"
    if len(text) != 1:
        raise CommandError(f"--delimiter must be one character or 'tab', got {text!r}")
    return text


def read_data(path, *, key=None, delimiter=None, index_col=None, columns=None, mmap=False,
              header=None):
    """The samples in ``path`` (.csv, .npy or .npz), as :class:`Data`.

    Parameters
    ----------
    path : str
    key : str, optional
        The array of a .npz file with several.
    delimiter : str, optional
        The CSV field separator (default ',').
    index_col : str, optional
        CSV: the column (name, or number counted from 1) that holds row
        names or numbers rather than a feature; 'none' keeps every column.
        By default an unnamed first column holding 0, 1, ..., n-1 (what
        ``pandas.DataFrame.to_csv`` writes) is the index.
    columns : str, optional
        The feature columns, comma-separated names (CSV with a header) or
        numbers counted from 1; default: all.
    mmap : bool
        Memory-map a .npy file (a large similarity matrix is then not read
        into memory before the fit's own copy).
    header : bool or None
        CSV: whether the first line holds column names; None: detected
        (see :func:`header_decision`).
    """
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in SUFFIXES:
        raise CommandError(
            f"{path}: unsupported file type {suffix or '(none)'!r}; use .csv, .npy or .npz"
        )
    if not os.path.isfile(path):
        raise CommandError(f"{path}: no such file")
    if suffix == ".csv":
        if key is not None:
            raise UsageError("--key chooses an array in a .npz file; a .csv file has none")
        return _read_csv(path, delimiter_character(delimiter or ","), delimiter is not None,
                         index_col, columns, header)
    for option, value in (("--delimiter", delimiter), ("--index-col", index_col),
                          ("--header" if header else "--no-header", header)):
        if value is not None:
            raise UsageError(f"{option} applies to .csv files only")
    if suffix == ".npy":
        if key is not None:
            raise UsageError("--key chooses an array in a .npz file; a .npy file holds one")
        values = _read_npy(path, mmap)
    else:
        values = _read_npz(path, key)
    values = _checked_array(path, values)
    if columns is not None:
        values = values[:, _column_numbers(path, columns, values.shape[1], None)]
    _check_finite(path, values)
    return Data(values)


# --------------------------------------------------------------------------
# NumPy files.
# --------------------------------------------------------------------------


def _read_npy(path, mmap):
    with open(path, "rb") as file:
        is_npy = file.read(len(_NPY_MAGIC)) == _NPY_MAGIC
    if not is_npy:
        raise CommandError(f"{path}: not a NumPy .npy file (it does not start with one's header)")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as error:
        if "pickle" in str(error):
            raise CommandError(f"{path}: holds Python objects, not numbers") from error
        raise CommandError(f"{path}: damaged .npy file ({_one_line(error)})") from error
    except (OSError, EOFError) as error:
        raise CommandError(f"{path}: damaged .npy file ({_one_line(error)})") from error


def _read_npz(path, key):
    try:
        # Our own handle: np.load leaves its file open when the zip is damaged.
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as archive:
            names = list(archive.files)
            if key is None:
                if len(names) != 1:
                    raise CommandError(
                        f"{path} holds {len(names)} arrays ({', '.join(names) or 'none'}); "
                        "choose one with --key"
                    )
                key = names[0]
            if key not in names:
                raise CommandError(f"{path} has no array {key!r} (it has: {', '.join(names)})")
            return archive[key]
    except CommandError:
        raise
    except ValueError as error:
        if "pickle" in str(error):
            raise CommandError(
                f"{path}: array {key!r} holds Python objects, not numbers"
            ) from error
        raise CommandError(f"{path}: damaged .npz file ({_one_line(error)})") from error
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise CommandError(f"{path}: damaged .npz file ({_one_line(error)})") from error


def _checked_array(path, values):
    if values.dtype.kind not in "biuf":
        raise CommandError(f"{path}: the data must be numeric, got dtype {values.dtype}")
    if values.ndim == 1:
        values = values.reshape(-1, 1)
    if values.ndim != 2:
        raise CommandError(f"{path}: expected a 2-D array, got shape {values.shape}")
    if values.size == 0:
        raise CommandError(f"{path}: no data")
    return values


def _check_finite(path, values, describe=None):
    """Raise at the first NaN or infinity (blocks of rows: no N x N mask)."""
    if values.dtype.kind != "f":
        return
    rows = max(1, (1 << 24) // max(1, values.shape[1]))
    for start in range(0, values.shape[0], rows):
        bad = ~np.isfinite(values[start : start + rows])
        if bad.any():
            row, column = np.argwhere(bad)[0]
            row += start
            if describe is not None:
                raise CommandError(describe(int(row), int(column)))
            value = values[row, column]
            raise CommandError(
                f"{path}, row {row + 1}, column {column + 1}: "
                f"{'NaN' if np.isnan(value) else value}"
            )


def _one_line(error):
    return " ".join(str(error).split()) or type(error).__name__


# --------------------------------------------------------------------------
# CSV files.
# --------------------------------------------------------------------------


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _content_lines(path):
    """``(line number, text)`` of the lines pandas reads: neither blank nor
    a ``#`` comment (a comment may also end a line)."""
    with open(path, encoding="utf-8-sig", newline="") as file:
        for number, line in enumerate(file, start=1):
            content = line.split("#", 1)[0]
            if content.strip():
                yield number, content.rstrip("\r\n")


def _fields(line, delimiter):
    return next(csv.reader([line], delimiter=delimiter, skipinitialspace=True), [])


def _read_csv(path, delimiter, delimiter_given, index_col, columns, header):
    first_fields = _first_fields(path, delimiter, delimiter_given)
    notes = []
    if header is None:
        header, note = header_decision(first_fields, _rows_after_the_first(path, delimiter))
        notes += [note] if note else []
    frame = _read_frame(path, delimiter, header)
    names = [field.strip() for field in first_fields] if header else None
    if names is not None and len(names) != frame.shape[1]:
        names = [str(name) for name in frame.columns]
    n_columns = frame.shape[1]
    if frame.shape[0] == 0:
        guessed = "; --no-header reads it as a sample" if notes else ""
        raise CommandError(f"{path}: no data (only a header{guessed})")

    def column_name(j):
        return f'column "{names[j]}"' if names and names[j] else f"column {j + 1}"

    def place(i, j):
        return f"{path}, row {_line_of_row(path, i, header)}, {column_name(j)}"

    if index_col is None:
        index_column, note = _detected_index(frame, names, column_name)
        notes += [note] if note else []
    elif index_col.lower() != "none":
        index_column = _column_numbers(path, index_col, n_columns, names, "--index-col")[0]
    else:
        index_column = None
    if columns is not None:
        chosen = _column_numbers(path, columns, n_columns, names, "--columns")
        if index_column in chosen:
            raise UsageError(f"{column_name(index_column)} is the row index, not a feature "
                             "(--index-col none to use it)")
    else:
        chosen = [j for j in range(n_columns) if j != index_column]
    if not chosen:
        raise CommandError(f"{path}: no feature column left")

    def reference(j):  # how --index-col would name column j
        return f'"{names[j]}"' if names and names[j] and "," not in names[j] else str(j + 1)

    hint = index_col is None and columns is None
    values = _numeric_columns(frame, chosen, place, delimiter, reference if hint else None)

    def describe(i, position):
        j = chosen[position]
        line_number = _line_of_row(path, i, header)
        fields = _fields(_line_text(path, line_number), delimiter)
        if len(fields) <= j:
            expected = "the header has" if header else "the first row has"
            return (f"{path}, row {line_number}: {len(fields)} "
                    f"{'field' if len(fields) == 1 else 'fields'}, {expected} {n_columns}")
        text = fields[j].strip()
        if not text:
            text = "empty"
        elif _is_number(text) and np.isnan(float(text)):
            text = "NaN"
        return f"{place(i, j)}: {text}"

    _check_finite(path, values, describe)
    feature_names = [names[j] or f"column {j + 1}" for j in chosen] if names else None
    if index_column is None:
        return Data(values, feature_names, notes=tuple(notes))
    row_names = _row_names(path, delimiter, header, frame, index_column)
    return Data(values, feature_names, column_name(index_column), row_names, tuple(notes))


# How many lines after the first the header detection looks at.
_HEADER_SAMPLE_ROWS = 50

_INTEGER = re.compile(r"[+-]?[0-9]+")


def _field_kind(text):
    """'empty', 'integer', 'number' (any other float) or 'text'."""
    text = text.strip()
    if not text:
        return "empty"
    if _INTEGER.fullmatch(text):
        return "integer"
    return "number" if _is_number(text) else "text"


def header_decision(first_fields, rows):
    """``(has_header, note)``: whether the first line of a CSV file names
    the columns, judged as a pandas user expects, and a note when the
    guess rests on numbers alone (it says how to decide otherwise).

    ``rows`` are the fields of the lines that follow (a sample). The first
    line is a header when

    - a field is text above a column that is not all text (a column that
      is text all the way down holds names: its first field is one);
    - it is ``0,1,...,d-1`` (pandas' default column names), after the
      index's empty cell or name when the first column is pandas' index;
    - its fields are integers above columns of decimals (the type
      comparison of :meth:`csv.Sniffer.has_header`, which on its own takes
      integers and decimals for one type and so never sees pandas' names).
    """
    fields = [field.strip() for field in first_fields]
    kinds = [_field_kind(field) for field in fields]
    below = [[_field_kind(row[j]) for row in rows if len(row) == len(fields)]
             for j in range(len(fields))]
    all_text = [bool(column) and all(k == "text" for k in column) for column in below]
    for kind, text_column in zip(kinds, all_text):
        if kind == "text" and not text_column:
            return True, None
    # The first field may head pandas' index: empty, or a name above names.
    lead = 1 if len(fields) > 1 and (fields[0] == "" or all_text[0]) else 0
    rest = fields[lead:]
    if lead and fields[0] == "" and rest == [str(j) for j in range(len(rest))]:
        return True, None  # a sample cannot start with an empty field and count from 0
    shown = ",".join(fields) if len(",".join(fields)) <= 40 else ",".join(fields)[:37] + "..."
    if len(rest) > 1 - lead and rest == [str(j) for j in range(len(rest))]:
        return True, (f'the first line ("{shown}") is taken as a header (pandas\' default '
                      "column names), not a sample (--no-header: read it as one)")
    if rest and all(kind == "integer" for kind in kinds[lead:]) and all(
        column and all(k == "number" for k in column) for column in below[lead:]
    ):
        return True, (f'the first line ("{shown}") is taken as a header (integers above '
                      "columns of decimals), not a sample (--no-header: read it as one)")
    return False, None


def _rows_after_the_first(path, delimiter):
    rows = []
    for position, (_, text) in enumerate(_content_lines(path)):
        if position > _HEADER_SAMPLE_ROWS:
            break
        if position:
            rows.append(_fields(text, delimiter))
    return rows


def _detected_index(frame, names, column_name):
    """``(column, note)``: the first column when it is the row index, as
    pandas writes it (an unnamed header field above it, or 0, 1, ..., n-1
    under no header), or a column of distinct texts (row names); else
    ``(None, None)``."""
    import pandas as pd

    n_samples, n_columns = frame.shape
    if n_columns < 2:
        return None, None
    first = frame.iloc[:, 0]
    unnamed = bool(names) and names[0] == "" and all(names[1:])
    undo = "not a feature (--index-col none: use it as a feature)"
    if _is_row_numbers(first) and (unnamed or names is None and n_samples > 1):
        return 0, f"{column_name(0)} (unnamed, 0 to {n_samples - 1}) is the row index, {undo}"
    names_like = (
        first.dtype.kind == "O" and first.notna().all()
        and bool(pd.to_numeric(first, errors="coerce").isna().all())
    )
    if names_like and (unnamed or first.is_unique):
        return 0, (f'{column_name(0)} holds row names (e.g. "{first.iloc[0]}"), not numbers: '
                   "it is the row index, not a feature")
    if unnamed:
        return 0, f'{column_name(0)} (unnamed, e.g. "{first.iloc[0]}") is the row index, {undo}'
    return None, None


def _row_names(path, delimiter, header, frame, j):
    """The fields of column ``j`` as written (pandas turned them into
    numbers where it could: ``007`` or ``1e3`` would change)."""
    column = frame.iloc[:, j]
    if column.dtype.kind == "O" and column.notna().all():
        return [str(name) for name in column]
    if column.dtype.kind in "iu":
        return [str(name) for name in column.tolist()]
    as_text = _read_frame(path, delimiter, header, usecols=[j], dtype=str).iloc[:, 0]
    return [("" if name is None or name != name else str(name)) for name in as_text]


def _first_fields(path, delimiter, delimiter_given):
    """The fields of the first content line; an error naming ``--delimiter``
    when the file is clearly separated by something else."""
    try:
        first = next(_content_lines(path), None)
    except UnicodeDecodeError as error:
        raise CommandError(
            f"{path}: not UTF-8 text ({error.reason} at byte {error.start}); save it as UTF-8"
        ) from error
    if first is None:
        raise CommandError(f"{path}: no data")
    first_fields = _fields(first[1], delimiter)
    if not delimiter_given:
        # A ';' is a separator (spreadsheets in locales with decimal commas
        # write them); a tab or '|' when there is no comma at all.
        for other, option in _OTHER_DELIMITERS.items():
            if other in first[1] and (other == ";" or len(first_fields) == 1):
                decimals = (
                    " (decimal commas are not read: write 1.5, not 1,5)"
                    if other == ";" and re.search(r"[0-9],[0-9]", first[1]) else ""
                )
                raise CommandError(
                    f"{path}, row {first[0]}: the fields seem separated by {other!r}: "
                    f"use {option}{decimals}"
                )
    return first_fields


def _read_frame(path, delimiter, has_header, **options):
    import pandas as pd

    try:
        return pd.read_csv(
            path, sep=delimiter, header=0 if has_header else None, comment="#",
            skip_blank_lines=True, skipinitialspace=True, encoding="utf-8-sig",
            low_memory=False, **options,
        )
    except pd.errors.EmptyDataError:
        raise CommandError(f"{path}: no data") from None
    except pd.errors.ParserError as error:
        raise CommandError(_ragged_row(path, delimiter) or f"{path}: cannot read: "
                           f"{_one_line(error)}") from error
    except UnicodeDecodeError as error:
        raise CommandError(
            f"{path}: not UTF-8 text ({error.reason} at byte {error.start}); save it as UTF-8"
        ) from error


def _numeric_columns(frame, chosen, place, delimiter, reference=None):
    """The ``chosen`` columns as float64; the first field that is not a
    number is an error at its place (``place(i, j)``), which points at
    ``--index-col`` when the column holds no number at all (names or
    categories) and ``reference(j)`` says how to name it."""
    import pandas as pd

    values = np.empty((frame.shape[0], len(chosen)), dtype=np.float64)
    for position, j in enumerate(chosen):
        column = frame.iloc[:, j]
        if column.dtype.kind not in "biuf":
            numbers = pd.to_numeric(column, errors="coerce")
            not_numbers = np.flatnonzero(numbers.isna().to_numpy() & column.notna().to_numpy())
            if not_numbers.size:
                i = int(not_numbers[0])
                text = str(column.iloc[i])
                hint = ""
                for other, option in _OTHER_DELIMITERS.items():
                    if other in text and other != delimiter:
                        hint = f" (fields separated by {other!r}? use {option})"
                        break
                if not hint and reference is not None and numbers.isna().all():
                    hint = (f" (a column of names, not a feature? --index-col {reference(j)} "
                            "takes it as the row names; --columns chooses the features)")
                raise CommandError(f'{place(i, j)}: "{text}" is not a number{hint}')
            column = numbers
        values[:, position] = column.to_numpy(dtype=np.float64, na_value=np.nan)
    return values


def _is_row_numbers(column):
    """Whether a column holds 0, 1, ..., n-1 (a written pandas index)."""
    if column.dtype.kind not in "iu":
        return False
    return bool(np.array_equal(column.to_numpy(), np.arange(column.size)))


def _line_of_row(path, row, has_header):
    """The line number (from 1) of data row ``row`` (from 0)."""
    wanted = row + (1 if has_header else 0)
    for position, (number, _) in enumerate(_content_lines(path)):
        if position == wanted:
            return number
    return wanted + 1


def _line_text(path, line_number):
    for number, text in _content_lines(path):
        if number == line_number:
            return text
    return ""


def _ragged_row(path, delimiter):
    """``path, row R: F fields, the header has H`` for the first row whose
    field count differs from the first row's, or None."""
    expected = None
    for number, text in _content_lines(path):
        count = len(_fields(text, delimiter))
        if expected is None:
            expected = count
        elif count != expected:
            return (f"{path}, row {number}: {count} {'field' if count == 1 else 'fields'}, "
                    f"the first row has {expected}")
    return None


def _column_numbers(path, text, n_columns, names, option="--columns"):
    """Column positions (from 0) of a comma-separated list of header names
    or numbers counted from 1."""
    chosen = []
    for item in (part.strip() for part in text.split(",")):
        if re.fullmatch(r"[0-9]+", item):
            number = int(item)
            if not 1 <= number <= n_columns:
                raise CommandError(
                    f"{option} {item}: {path} has {n_columns} "
                    f"{'column' if n_columns == 1 else 'columns'} (numbered from 1)"
                )
            chosen.append(number - 1)
        elif names and item in names:
            chosen.append(names.index(item))
        elif names:
            listed = ", ".join(f'"{name}"' for name in names if name)
            raise CommandError(f'{option}: {path} has no column "{item}" (it has: {listed})')
        else:
            raise CommandError(
                f"{option} {item}: {path} has no header with column names; "
                "give column numbers (1 = the first)"
            )
    return chosen

