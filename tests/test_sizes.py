import pytest

from tasks.site.sizes import format_size, parse_size


@pytest.mark.parametrize(
    ("text", "size"),
    [
        (512, 512),
        ("512", 512),
        ("1024", 1024),
        ("512k", 512 * 1024),
        ("1K", 1024),
        ("400m", 400 * 1024**2),
        ("400M", 400 * 1024**2),
        ("2g", 2 * 1024**3),
        ("2G", 2 * 1024**3),
        ("1t", 1024**4),
        ("0010m", 10 * 1024**2),
    ],
)
def test_parse_size_accepts(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    "text", ["lots", "400mb", "400MiB", "1.5g", "", " 1m", "1m ", "1 m", "-1m", "m", "1x", "0x200"]
)
def test_parse_size_refuses_other_spellings(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_size(text)
    assert str(caught.value) == f"expected a size such as 256m or 1g, got {text!r}"


@pytest.mark.parametrize("value", [True, False, None, 1.5, [512]])
def test_parse_size_refuses_other_types(value: object) -> None:
    with pytest.raises(ValueError) as caught:
        parse_size(value)  # type: ignore[arg-type]
    assert str(caught.value) == f"expected a size such as 256m or 1g, got {value!r}"


@pytest.mark.parametrize("text", ["0", "0m", 0, -512])
def test_parse_size_refuses_nothing(text: str | int) -> None:
    with pytest.raises(ValueError) as caught:
        parse_size(text)
    assert str(caught.value) == f"expected a size greater than 0, got {text!r}"


@pytest.mark.parametrize("text", ["1000", 1000, 513, "100"])
def test_parse_size_wants_whole_sectors(text: str | int) -> None:
    with pytest.raises(ValueError) as caught:
        parse_size(text)
    assert str(caught.value) == (
        "expected a multiple of 512 bytes (a bare number counts bytes; "
        f"write 400m for 400 MiB), got {text!r}"
    )


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (419430400, "400m"),
        (0, "0"),
        (512, "512"),
        (1536, "1536"),
        (1024, "1k"),
        (1536 * 1024**2, "1536m"),
        (3 * 1024**3, "3g"),
        (1024**4, "1t"),
        (5 * 1024**4, "5t"),
    ],
)
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text


def test_format_size_refuses_negative() -> None:
    with pytest.raises(ValueError, match="expected a size of 0 or more bytes, got -1"):
        format_size(-1)


@pytest.mark.parametrize("sectors", [1, 3, 2048, 2049, 819200, 2**31 + 1, 2**33])
def test_format_then_parse_gives_the_same_size(sectors: int) -> None:
    size = sectors * 512
    assert parse_size(format_size(size)) == size
