"""The photo page of ``mmembed serve`` as a user meets it: the real server as a subprocess, real
photos, Debian's chromium driven by Playwright, on a desktop and on a phone (touch). Each test is
one defect a user trial found: the search box keeping what was typed, one history entry per
query (and none for an IME's syllables), a closed photo leaving the grid as it was, swiping on a
phone, a server gone, focus kept in the photo view, the Duplicates view's rows, a photo whose
file went."""

from __future__ import annotations

import shutil
import urllib.parse
from pathlib import Path

import pytest

from conftest import shared_path
from test_serve import browser, get_json, served, start_server, stop_server  # noqa: F401  (fixtures)
from test_where_search import library  # noqa: F401  (a geotagged library: places and months)

LONG_NAME = "Averyveryverylongsinglewordfilenamewithoutanyspacesfromacameraroll20240817.jpg"
GONE_NAME = "gone_since_indexed.jpg"


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory, micro_clip: str, session_cache: Path):
    """A dozen real photos, served: two pairs of byte copies (two duplicate groups), a photo with
    an EXIF date (a month on the timeline), one with a long one-word name, and one whose file was
    deleted after it was indexed."""
    import mmembed

    dev = sorted(shared_path("data/flickr8k/dev").glob("*.jpg"))[:10]
    folder = tmp_path_factory.mktemp("page-photos")
    for src in dev[:7]:
        shutil.copy(src, folder / src.name)
    shutil.copy(dev[0], folder / "copy_a.jpg")
    shutil.copy(dev[1], folder / "copy_b.jpg")
    shutil.copy(dev[7], folder / LONG_NAME)
    shutil.copy(dev[8], folder / GONE_NAME)
    shutil.copy(shared_path("data/photos/camera_exif/Canon_40D.jpg"), folder / "Canon_40D.jpg")
    db = str(tmp_path_factory.mktemp("page-db") / "db.lancedb")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("XDG_CACHE_HOME", str(session_cache))
        mmembed.Index(db, model=micro_clip).ingest(folder, ocr=False)
        (folder / GONE_NAME).unlink()
        proc, url, errors = start_server("--db", db)
    yield {"url": url, "db": db, "folder": folder, "cache": session_cache}
    assert stop_server(proc) == 0, "".join(errors)[-2000:]


def open_tab(browser, phone: bool = False):  # noqa: F811
    if phone:
        context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                                      is_mobile=True, has_touch=True)
    else:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
    tab = context.new_page()
    tab.page_errors = []  # type: ignore[attr-defined]
    tab.on("pageerror", lambda e: tab.page_errors.append(str(e)))
    return context, tab


@pytest.fixture
def desktop(browser):  # noqa: F811
    context, tab = open_tab(browser)
    yield tab
    context.close()
    assert tab.page_errors == []


@pytest.fixture
def phone(browser):  # noqa: F811
    context, tab = open_tab(browser, phone=True)
    yield tab
    context.close()
    assert tab.page_errors == []


def ready(tab) -> None:
    tab.wait_for_selector("body[data-state=ready]", timeout=30_000)


def query_is(tab, query: str) -> None:
    """Wait until the page's address holds ``query``, and the page is ready again."""
    tab.wait_for_function("q => new URLSearchParams(location.search).get('q') === q", arg=query, timeout=10_000)
    ready(tab)


def opened(tab, url: str):
    """``tab`` at ``url`` with the page ready (``ready``)."""
    tab.goto(url)
    ready(tab)
    return tab


def url_param(tab, name: str) -> str | None:
    return urllib.parse.parse_qs(urllib.parse.urlparse(tab.url).query).get(name, [None])[0]


def swipe(tab, start: tuple[float, float], end: tuple[float, float], steps: int = 6) -> None:
    """A real one-finger swipe (touch events from the browser's input pipeline, via CDP)."""
    cdp = tab.context.new_cdp_session(tab)
    (x0, y0), (x1, y1) = start, end
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x0, "y": y0}]})
    for i in range(1, steps + 1):
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [
            {"x": x0 + (x1 - x0) * i / steps, "y": y0 + (y1 - y0) * i / steps}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


# ---------------------------------------------------------------- 1, 4: typing
def test_the_box_and_the_panel_keep_the_spaces_typed(desktop, small: dict) -> None:
    tab = opened(desktop, small["url"])
    tab.click("#q")
    tab.keyboard.type("dog ")
    tab.wait_for_function("() => new URLSearchParams(location.search).get('q') === 'dog'", timeout=10_000)
    ready(tab)  # a pause: "dog" searched, trimmed in the URL only
    assert tab.input_value("#q") == "dog "  # the space typed is still there
    tab.keyboard.type("on grass")
    tab.wait_for_function("() => new URLSearchParams(location.search).get('q') === 'dog on grass'", timeout=10_000)
    ready(tab)
    assert tab.input_value("#q") == "dog on grass"

    tab.click("#toggle-filters")  # the panel's text fields: the same
    for field, name in (("#not", "not"), ("#where", "where")):
        first, then = ("blurry ", "text") if name == "not" else ("width > 10 ", "AND height > 10")
        tab.click(field)
        tab.keyboard.type(first)
        tab.wait_for_function("([n, v]) => new URLSearchParams(location.search).get(n) === v", arg=[name, first.strip()], timeout=10_000)
        ready(tab)
        assert tab.input_value(field) == first
        tab.keyboard.type(then)
        tab.wait_for_function("([n, v]) => new URLSearchParams(location.search).get(n) === v", arg=[name, first + then], timeout=10_000)
        assert tab.input_value(field) == first + then


def test_a_query_typed_with_pauses_is_one_history_entry(desktop, small: dict) -> None:
    tab = opened(desktop, small["url"])
    start = tab.evaluate("history.length")
    tab.click("#q")
    for part in ("a", " dog", " on the", " beach"):  # typing with pauses: a search after each
        tab.keyboard.type(part)
        tab.wait_for_timeout(450)
    tab.wait_for_function("() => new URLSearchParams(location.search).get('q') === 'a dog on the beach'", timeout=10_000)
    ready(tab)
    tab.keyboard.press("Enter")  # the query finished: no entry more, it is the one on screen
    tab.wait_for_timeout(300)
    assert tab.evaluate("history.length") == start + 1  # one query, one entry: not one per pause
    tab.click("#toggle-filters")  # leaving the box finished it: the next words are a new entry
    tab.click("#not")
    tab.keyboard.type("blurry")
    tab.wait_for_function("() => new URLSearchParams(location.search).get('not') === 'blurry'", timeout=10_000)
    assert tab.evaluate("history.length") == start + 2

    tab.go_back()  # Back: a whole query at a time, never its fragments
    tab.wait_for_function("() => !new URLSearchParams(location.search).get('not')", timeout=10_000)
    assert url_param(tab, "q") == "a dog on the beach"
    tab.wait_for_function("() => document.getElementById('q').value === 'a dog on the beach'")
    tab.go_back()
    tab.wait_for_function("() => !new URLSearchParams(location.search).get('q')", timeout=10_000)
    tab.wait_for_function("() => document.getElementById('q').value === ''")


def test_no_search_while_an_ime_composes(desktop, small: dict) -> None:
    tab = opened(desktop, small["url"])
    start = tab.evaluate("history.length")
    tab.click("#q")
    cdp = tab.context.new_cdp_session(tab)
    for text in ("g", "go", "gou"):  # pinyin being typed: composition events, as from a real IME
        cdp.send("Input.imeSetComposition", {"text": text, "selectionStart": len(text), "selectionEnd": len(text)})
        tab.wait_for_timeout(100)
    tab.wait_for_timeout(700)
    assert tab.input_value("#q") == "gou" and url_param(tab, "q") is None  # nothing searched yet
    cdp.send("Input.insertText", {"text": "狗"})  # the composition ends with the word picked
    cdp.detach()
    tab.wait_for_function("() => new URLSearchParams(location.search).get('q') === '狗'", timeout=10_000)
    ready(tab)
    assert tab.evaluate("history.length") == start + 1


# ---------------------------------------------------------------- 2: closing a photo
def test_closing_a_photo_leaves_the_grid_scrolled_where_it_was(desktop, served: dict) -> None:  # noqa: F811
    tab = opened(desktop, served["url"])
    for _ in range(40):  # scroll on until 150 photos are loaded
        if tab.locator(".card").count() >= 150:
            break
        tab.mouse.wheel(0, 6000)
        tab.wait_for_timeout(150)
    loaded = tab.locator(".card").count()
    assert loaded >= 150
    card = tab.locator(".card[data-index='120']")
    card.scroll_into_view_if_needed()
    tab.wait_for_timeout(100)
    scrolled = tab.evaluate("scrollY")
    assert scrolled > 1000
    card.click()
    tab.wait_for_selector("#detail:not([hidden])")
    tab.keyboard.press("Escape")  # Esc: Back, as the photo added the history entry
    tab.wait_for_selector("#detail", state="hidden")
    tab.wait_for_timeout(400)  # a search that runs again would redraw the grid by now
    assert tab.locator(".card").count() == loaded
    assert abs(tab.evaluate("scrollY") - scrolled) <= 2
    assert tab.evaluate("document.activeElement.dataset.index") == "120"

    tab.locator(".card[data-index='121']").click()
    tab.wait_for_selector("#detail:not([hidden])")
    tab.go_back()  # the browser's Back
    tab.wait_for_selector("#detail", state="hidden")
    tab.wait_for_timeout(400)
    assert tab.locator(".card").count() == loaded
    assert abs(tab.evaluate("scrollY") - scrolled) <= 2
    assert tab.evaluate("document.activeElement.dataset.index") == "121"


# ---------------------------------------------------------------- 6: a modal photo view
def test_focus_stays_in_the_photo_view_and_goes_back_to_its_card(desktop, small: dict) -> None:
    tab = opened(desktop, small["url"])
    tab.focus(".card[data-index='2']")
    tab.keyboard.press("Enter")
    tab.wait_for_selector("#detail:not([hidden])")
    tab.wait_for_selector("#strip img")
    inside = "() => document.getElementById('detail').contains(document.activeElement)"
    for key in ["Tab"] * 25 + ["Shift+Tab"] * 25:
        tab.keyboard.press(key)
        assert tab.evaluate(inside), (key, tab.evaluate("document.activeElement.outerHTML.slice(0, 120)"))
    tab.keyboard.press("Escape")
    tab.wait_for_selector("#detail", state="hidden")
    assert tab.evaluate("document.activeElement.dataset.index") == "2"


# ---------------------------------------------------------------- 3, 7: the photo view on a phone
def test_a_phone_swipes_through_photos(phone, small: dict) -> None:
    tab = opened(phone, small["url"])
    paths = tab.eval_on_selector_all(".card", "cs => cs.map(c => c.dataset.path)")
    ids = tab.eval_on_selector_all(".card", "cs => cs.map(c => c.dataset.id)")
    at = next(i for i in range(len(paths) - 1) if GONE_NAME not in paths[i] + paths[i + 1])  # two photos that show
    ids = ids[at:]
    tab.locator(f".card[data-index='{at}']").scroll_into_view_if_needed()
    tab.tap(f".card[data-index='{at}']")
    tab.wait_for_selector("#detail:not([hidden])")
    tab.wait_for_selector("#strip img")
    box = tab.locator("#detail-image").bounding_box()
    y = box["y"] + box["height"] / 2
    swipe(tab, (330, y), (60, y + 10))  # right to left: the next photo
    tab.wait_for_function("(id) => new URLSearchParams(location.search).get('item') === id", arg=ids[1], timeout=10_000)
    swipe(tab, (60, y), (330, y))  # left to right: back to the previous one
    tab.wait_for_function("(id) => new URLSearchParams(location.search).get('item') === id", arg=ids[0], timeout=10_000)
    assert tab.is_visible("#next")  # and a button one can see
    tab.click("#next", timeout=5_000)
    tab.wait_for_function("(id) => new URLSearchParams(location.search).get('item') === id", arg=ids[1], timeout=10_000)



def test_a_phone_photo_view_scrolls_as_a_whole_with_close_in_reach(phone, small: dict) -> None:
    tab = opened(phone, small["url"])
    tab.tap(f".card:not([data-path$='{GONE_NAME}'])")
    tab.wait_for_selector("#detail:not([hidden])")
    tab.wait_for_selector("#strip img")
    # the whole view scrolls, photo then details, and × stays where a thumb reaches it
    tab.evaluate("""() => { const d = document.getElementById('detail');
        for (const n of [d, ...d.querySelectorAll('*')]) n.scrollTop = n.scrollHeight; }""")
    tab.wait_for_timeout(200)
    assert tab.locator("#detail-image").bounding_box()["y"] < 0  # the photo scrolled away with the rest
    close = tab.locator("#close").bounding_box()
    assert close and 0 <= close["y"] and close["y"] + close["height"] <= 844 and close["x"] + close["width"] <= 390
    at = tab.evaluate("([x, y]) => document.elementFromPoint(x, y)?.id", [close["x"] + close["width"] / 2, close["y"] + close["height"] / 2])
    assert at == "close"
    tab.click("#close")
    tab.wait_for_selector("#detail", state="hidden")


def test_a_long_name_is_cut_with_an_ellipsis_on_a_phone(phone, small: dict) -> None:
    tab = opened(phone, small["url"])
    caption = tab.locator(f".card[data-path$='{LONG_NAME}'] .caption")
    assert caption.evaluate("c => c.scrollWidth <= c.clientWidth")  # it wraps (and its 2nd line ends in …), not cut
    caption.click()
    tab.wait_for_selector("#detail:not([hidden])")
    assert tab.locator("#detail-caption").bounding_box()["height"] <= 4 * 24


# ---------------------------------------------------------------- 5: the server gone
def test_a_server_gone_is_said_in_words_and_the_results_stay(desktop, small: dict) -> None:
    proc, url, _ = start_server("--db", small["db"])
    tab = desktop
    try:
        tab.goto(url + "?q=dog")
        ready(tab)
        before = tab.eval_on_selector_all(".card", "cs => cs.map(c => c.dataset.id)")
        assert before
    finally:
        stop_server(proc)
    tab.fill("#q", "children in the water")
    tab.wait_for_selector("#message:not([hidden])", timeout=20_000)
    message = tab.text_content("#message")
    assert "server does not answer" in message and "mmembed serve" in message and "Failed to fetch" not in message
    assert tab.eval_on_selector_all(".card", "cs => cs.map(c => c.dataset.id)") == before


# ---------------------------------------------------------------- 8, 10: the Duplicates view
def test_duplicates_arrow_down_goes_a_row_down(desktop, small: dict) -> None:
    tab = desktop
    tab.goto(small["url"] + "?view=dupes")
    tab.wait_for_selector("body[data-state=ready] .grid h2.group", timeout=60_000)
    assert tab.locator(".grid h2.group").count() == 2
    tab.focus(".card[data-index='0']")
    tab.keyboard.press("ArrowDown")
    first = tab.eval_on_selector(".card[data-index='0']", "c => [c.offsetTop, c.offsetLeft]")
    now = tab.evaluate("[document.activeElement.offsetTop, document.activeElement.offsetLeft, document.activeElement.dataset.index]")
    assert now[0] > first[0] and now[1] == first[1], now  # the next group's first photo, below; not the one beside
    tab.keyboard.press("ArrowUp")
    assert tab.evaluate("document.activeElement.dataset.index") == "0"


def test_the_duplicates_view_has_a_link_back_to_all_photos(desktop, small: dict) -> None:
    tab = desktop
    tab.goto(small["url"] + "?view=dupes")
    tab.wait_for_selector("body[data-state=ready] .grid h2.group", timeout=60_000)
    back = tab.locator("#dupes-link")
    assert "All photos" in back.text_content()
    back.click()
    tab.wait_for_function("() => !new URLSearchParams(location.search).get('view')")
    ready(tab)
    assert tab.locator(".grid h2.group").count() == 0 and tab.locator(".card").count() == 12


def test_a_month_of_the_timeline_leaves_the_search_box_empty(desktop, small: dict) -> None:
    tab = opened(desktop, small["url"])
    tab.click(".where-month")
    tab.wait_for_function("() => location.search.includes('2008')", timeout=10_000)
    ready(tab)
    assert tab.input_value("#q") == ""
    paths = tab.eval_on_selector_all(".card", "cs => cs.map(c => c.dataset.path)")
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["Canon_40D.jpg"]


# ---------------------------------------------------------------- 9: a photo whose file went
def test_a_photo_whose_file_went_turns_its_actions_off_and_says_why_once(desktop, small: dict) -> None:
    tab = opened(desktop, small["url"])
    tab.click(f".card[data-path$='{GONE_NAME}']")
    tab.wait_for_selector("#detail-gone:not([hidden])", timeout=15_000)
    tab.wait_for_timeout(500)  # the similar photos' answer (410) is in too
    assert tab.is_disabled("#more-like")
    assert tab.get_attribute("#open-original", "href") is None
    assert tab.get_attribute("#open-original", "aria-disabled") == "true"
    reason = tab.text_content("#detail-gone")
    assert "gone" in reason and "/" not in reason
    text = tab.text_content("#detail")
    assert text.count("cannot be shown") == 1
    path = tab.get_attribute(f".card[data-path$='{GONE_NAME}']", "data-path")
    assert text.count(path) == 1  # the Path row only: no raw error with the path in it
    assert tab.text_content("#strip").strip() == ""


# ---------------------------------------------------------------- a second trial
def cards_in_groups(tab) -> tuple[int, int]:
    """The photos the Duplicates view's headings announce, and the photos in the grid."""
    said = tab.eval_on_selector_all(".grid h2.group", "hs => hs.map(h => Number(h.textContent.split(' · ')[1].split(' ')[0]))")
    return sum(said), tab.locator(".grid .card").count()


def test_the_duplicates_view_shows_its_groups_and_no_photo_list(desktop, served: dict) -> None:  # noqa: F811
    tab = opened(desktop, served["url"])
    assert tab.locator(".card").count() >= 50  # the photo list, with more pages to come
    tab.click("#dupes-link")
    tab.wait_for_function("() => document.body.dataset.state === 'ready' && document.getElementById('stats').textContent.includes('group')",
                          timeout=90_000)
    for _ in range(6):  # scrolling to the end: the groups, nothing of the photo list after them
        tab.mouse.wheel(0, 8000)
        tab.wait_for_timeout(250)
    said, shown = cards_in_groups(tab)
    assert shown == said, (shown, said, tab.text_content("#stats"))
    if not said:  # no duplicates in this library: nothing else either
        return
    last = tab.locator(".grid .card").last
    assert last.evaluate("c => c.previousElementSibling !== null") and tab.evaluate(
        "() => [...document.querySelectorAll('.grid > *')].pop().classList.contains('card')")
    last.click()
    tab.wait_for_selector("#detail:not([hidden])")
    item = url_param(tab, "item")
    tab.keyboard.press("ArrowRight")  # the last photo of the last group: no step into other photos
    tab.wait_for_timeout(500)
    assert url_param(tab, "item") == item and tab.is_hidden("#next")


def test_a_phone_shows_photos_first_and_places_and_months_folded(phone, small: dict) -> None:
    tab = opened(phone, small["url"])
    tab.wait_for_selector("#where-lists", state="attached", timeout=10_000)
    assert not tab.is_visible(".where-month")  # folded: the months are a tap away
    assert tab.locator(".card").first.bounding_box()["y"] < 844 / 2
    tab.tap("#where-lists summary")
    tab.wait_for_selector(".where-month", state="visible")


def test_the_duplicates_view_hides_place_and_date_filters(desktop, small: dict) -> None:
    tab = opened(desktop, small["url"])
    tab.click(".where-month")
    tab.wait_for_function("() => location.search.includes('2008')", timeout=10_000)
    ready(tab)
    assert tab.is_visible(".where-month") and tab.is_visible(".where-chip")
    tab.click("#dupes-link")
    tab.wait_for_selector("body[data-state=ready] .grid h2.group", timeout=60_000)
    assert not tab.is_visible("#where-lists") and not tab.is_visible(".where-chip")


def test_a_server_not_answering_is_no_gone_file(desktop, small: dict) -> None:
    import re
    proc, url, _ = start_server("--db", small["db"])
    port = urllib.parse.urlparse(url).port
    tab = desktop
    tab.route(re.compile(r"/thumbs/"), lambda route: route.abort("connectionrefused"))  # thumbnails not reached
    try:
        tab.goto(url + "?q=dog")
        ready(tab)
        tab.wait_for_timeout(1000)
        assert tab.locator(".card .gone").count() == 0  # not one "cannot be shown": nothing said it is gone
    finally:
        stop_server(proc)
    tab.click(f".card:not([data-path$='{GONE_NAME}'])")
    tab.wait_for_selector("#detail-gone:not([hidden])", timeout=15_000)
    text = tab.text_content("#detail-gone")
    assert "server does not answer" in text and "cannot be shown" not in text
    assert not tab.is_disabled("#more-like") and tab.get_attribute("#open-original", "aria-disabled") is None
    tab.keyboard.press("Escape")
    tab.wait_for_selector("#detail", state="hidden")
    tab.fill("#q", "children in the water")
    tab.wait_for_selector("#message:not([hidden])", timeout=20_000)
    tab.wait_for_selector("body[data-state=error]")
    assert tab.text_content("#stats") != "searching…"
    proc, url, errors = start_server("--db", small["db"], "--port", str(port))  # the server back, where it was
    try:
        assert urllib.parse.urlparse(url).port == port
        tab.unroute(re.compile(r"/thumbs/"))
        tab.wait_for_function("""() => [...document.querySelectorAll('.card img')].filter(
            i => i.complete && i.naturalWidth > 0).length >= 10""", timeout=20_000)  # the thumbnails asked again
        # none said gone but the photo an earlier test of this module really deleted (when it ran first)
        assert tab.locator(f".card:not([data-path$='{GONE_NAME}']) .gone").count() == 0
    finally:
        stop_server(proc)


def test_a_place_keeps_the_words_in_the_box(desktop, library: dict) -> None:
    proc, url, errors = start_server("--db", library["db"], env_extra=library["env"])
    tab = desktop
    try:
        opened(tab, url)
        tab.fill("#q", "mountain")
        query_is(tab, "mountain")
        tab.click(".where-place >> text=Barcelona, Spain (6)")
        query_is(tab, "mountain in Barcelona")
        assert tab.input_value("#q") == "mountain in Barcelona"
        tab.click(".where-place >> text=Kyoto, Japan")  # another place: it takes the first one's place
        query_is(tab, "mountain in Kyoto")
        tab.fill("#q", "")
        tab.wait_for_function("() => !new URLSearchParams(location.search).get('q')", timeout=10_000)
        ready(tab)
        tab.click(".where-place >> text=Barcelona, Spain (6)")
        query_is(tab, "photos in Barcelona")
    finally:
        stop_server(proc)


def month_params(tab) -> list:
    return tab.evaluate("""() => { const p = new URLSearchParams(location.search);
        return ['taken_after', 'taken_before', 'sort', 'date_from', 'date_to'].map(k => p.get(k)); }""")


def test_a_month_of_the_timeline_is_one_chip_and_marked(desktop, small: dict) -> None:
    tab = opened(desktop, small["url"])
    month = tab.locator(".where-month").first
    month.click()
    tab.wait_for_function("() => location.search.includes('2008')", timeout=10_000)
    ready(tab)
    assert tab.locator(".where-chip").count() == 1  # an empty box: the month as a chip too
    assert month.get_attribute("aria-pressed") == "true"
    tab.click(".where-chip .where-x")
    tab.wait_for_function("() => !location.search.includes('2008')", timeout=10_000)
    ready(tab)
    assert month_params(tab) == [None] * 5 and tab.locator(".card").count() == 12
    assert month.get_attribute("aria-pressed") == "false"

    tab.fill("#q", "dog")  # with words: one chip still, and removing it clears the whole month
    tab.wait_for_function("() => new URLSearchParams(location.search).get('q') === 'dog'", timeout=10_000)
    ready(tab)
    month.click()
    tab.wait_for_function("() => location.search.includes('2008')", timeout=10_000)
    ready(tab)
    assert tab.locator(".where-chip").count() == 1 and month.get_attribute("aria-pressed") == "true"
    tab.click(".where-chip .where-x")
    tab.wait_for_function("() => !location.search.includes('2008')", timeout=10_000)
    ready(tab)
    assert month_params(tab) == [None] * 5 and tab.locator(".where-chip").count() == 0


def test_an_emptied_box_starts_a_new_history_entry(desktop, small: dict) -> None:
    tab = opened(desktop, small["url"])
    tab.click("#q")
    tab.keyboard.type("a dog running on grass")
    tab.wait_for_function("() => new URLSearchParams(location.search).get('q') === 'a dog running on grass'", timeout=10_000)
    ready(tab)
    tab.keyboard.press("Control+A")
    tab.keyboard.press("Backspace")
    tab.wait_for_timeout(600)
    tab.keyboard.type("two children playing")
    tab.wait_for_function("() => new URLSearchParams(location.search).get('q') === 'two children playing'", timeout=10_000)
    ready(tab)
    tab.go_back()
    tab.wait_for_function("() => new URLSearchParams(location.search).get('q') !== 'two children playing'", timeout=10_000)
    assert url_param(tab, "q") == "a dog running on grass"


def test_a_new_query_starts_at_the_top(desktop, served: dict) -> None:  # noqa: F811
    tab = opened(desktop, served["url"] + "?q=dog")
    tab.mouse.wheel(0, 1500)
    tab.wait_for_function("() => scrollY > 1000", timeout=10_000)
    tab.fill("#q", "children in the water")
    tab.wait_for_function("() => new URLSearchParams(location.search).get('q') === 'children in the water'", timeout=10_000)
    ready(tab)
    tab.wait_for_timeout(300)
    assert tab.evaluate("scrollY") == 0


def test_a_link_to_a_photo_further_down_steps_and_closes_onto_its_card(desktop, served: dict) -> None:  # noqa: F811
    status, data = get_json(served["url"] + "api/search?q=people&n=150")
    assert status == 200 and len(data["hits"]) > 121
    ids = [h["id"] for h in data["hits"]]
    tab = desktop
    tab.goto(served["url"] + "?" + urllib.parse.urlencode({"q": "people", "item": ids[120]}))
    tab.wait_for_selector("#detail:not([hidden])", timeout=30_000)
    tab.wait_for_function("() => !document.getElementById('next').hidden && !document.getElementById('prev').hidden", timeout=20_000)
    tab.keyboard.press("ArrowRight")
    tab.wait_for_function("(id) => new URLSearchParams(location.search).get('item') === id", arg=ids[121], timeout=10_000)
    tab.keyboard.press("Escape")
    tab.wait_for_selector("#detail", state="hidden")
    assert tab.evaluate("document.activeElement.dataset.index") == "121"
