"""A remote TAXII 2.1 collection (another hub, CISA AIS, KISA C-TAS, OpenCTI), pulled with taxii2-client.

Incremental and resumable: each page is ingested and committed, then the source's cursor (the
page's ``X-TAXII-Date-Added-Last``) is saved in ``feed_sources``; the next run asks for
``added_after`` that cursor and follows ``next``. An interrupted run resumes after the last
committed page. Credentials are never stored: a source keeps the names of the environment
variables that hold them, so ``cti-hub feeds sync`` can run from cron.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import orjson
import requests
from taxii2client.common import TokenAuth
from taxii2client.exceptions import TAXIIServiceException
from taxii2client.v21 import Collection, as_pages

from feeds import register
from feeds.base import FeedError, Item, Outcome, Refusal, Target, resolve_target
from feeds.stix_bundle import StixBundle
from hub import models as m
from hub.progress import Report, silent
from hub.runtime import Hub
from hub.store import clock

PER_REQUEST = 1000
SETTING_KEYS = ("user", "password_env", "token_env", "cert", "key", "verify")


@register("taxii")
class TaxiiSource(StixBundle):
    """A remote TAXII 2.1 collection URL (``https://peer/api-root/collections/<id>/``)."""

    name = "taxii"

    def __init__(self, hub: Hub, target: Target, *, settings: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(hub, target, **kwargs)
        self.settings = {k: v for k, v in (settings or {}).items() if k in SETTING_KEYS and v not in (None, "")}

    def _collection(self, url: str) -> Collection:
        s = self.settings
        password = _env(s["password_env"]) if "password_env" in s else None
        auth = TokenAuth(_env(s["token_env"])) if "token_env" in s else None
        cert = (s["cert"], s["key"]) if "cert" in s and "key" in s else s.get("cert")
        try:
            collection = Collection(
                url, user=s.get("user"), password=password, auth=auth, cert=cert, verify=s.get("verify", True)
            )
        except ValueError as exc:
            raise FeedError(f"{url}: {exc}") from None
        if isinstance(s.get("verify"), str):
            # requests lets REQUESTS_CA_BUNDLE override a session's CA bundle; the one given for this source wins.
            session = collection._conn.session
            session.request = functools.partial(session.request, verify=s["verify"])
        return collection

    def run(self, source: str) -> Outcome:
        return self.sync(source)

    def sync(self, url: str, progress: Callable[[int], None] | None = None) -> Outcome:
        """Pull everything added since the saved cursor, page by page; return the tally."""
        if not url.endswith("/"):
            url += "/"
        self.source_label = self.source_label or url
        state = self._state(url)
        collection = self._collection(url)
        seen: dict[str, str] = {}
        collection._conn.session.hooks["response"].append(lambda r, *a, **k: seen.update(r.headers))
        filters = {"added_after": state.cursor} if state.cursor else {}
        pulled = 0
        try:
            for envelope in as_pages(collection.get_objects, per_request=PER_REQUEST, **filters):
                objects = envelope.get("objects") or []
                self._page(objects)
                pulled += len(objects)
                self.progress("pull", pulled, None, unit="objects")
                last = seen.get("X-TAXII-Date-Added-Last")
                if objects and last:
                    self._save(cursor=last)
                if progress is not None:
                    progress(len(objects))
        except (requests.RequestException, TAXIIServiceException) as exc:
            raise FeedError(f"{url}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        self._audit_run()
        self._save(last_run_us=clock.now_us(), last_summary=self.outcome.summary()[:2000])
        return self.outcome

    def _page(self, objects: list[Any]) -> None:
        ready: list[Item] = []
        for index, obj in enumerate(objects):
            if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
                self.outcome.refuse(f"objects[{index}]", "not a STIX object (expected a JSON object with a 'type')")
                continue
            for item in self._one(obj, "2.1"):
                if isinstance(item, Refusal):
                    self.outcome.refuse(item.key, item.reason)
                else:
                    ready.append(item)
        ready.sort(key=lambda i: i.obj.get("type") != "marking-definition")
        if ready:
            self._ingest(ready)

    def _state(self, url: str) -> m.FeedSource:
        with self.hub.session() as session:
            row = session.get(m.FeedSource, self.source_label)
            if row is None:
                row = m.FeedSource(
                    name=self.source_label,
                    kind=self.name,
                    url=url,
                    settings="{}",
                    cursor="",
                    last_summary="",
                    partner_slug=self.target.partner_slug,
                    collection_uuid=self.target.collection.uuid,
                )
                session.add(row)
            elif (row.partner_slug, row.collection_uuid) != (self.target.partner_slug, self.target.collection.uuid):
                raise FeedError(
                    f"source '{self.source_label}' already feeds collection {row.collection_uuid} as "
                    f"{row.partner_slug}; give another --source-name"
                )
            row.url = url
            if self.settings:
                row.settings = orjson.dumps(self.settings).decode()
            else:
                self.settings = orjson.loads(row.settings)
            session.flush()
            session.expunge(row)
            return row

    def _save(self, **values: Any) -> None:
        with self.hub.session() as session:
            row = session.get(m.FeedSource, self.source_label)
            assert row is not None
            for name, value in values.items():
                setattr(row, name, value)


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise FeedError(f"environment variable {name} is not set")
    return value


def sync_saved(
    hub: Hub, row: m.FeedSource, progress: Callable[[int], None] | None = None, report: Report = silent
) -> Outcome:
    """Pull what is new from one saved source, as the partner and into the collection it was saved with.

    ``progress`` gets the size of each page; ``report`` the running count (phase "pull").
    """
    with hub.session(write=False) as session:
        info = hub.snapshot(session).collections.get(row.collection_uuid)
    if info is None:
        raise FeedError(f"collection {row.collection_uuid} no longer exists")
    target = resolve_target(hub, row.partner_slug, info.uuid, info.api_root)
    return TaxiiSource(hub, target, source_label=row.name, progress=report).sync(row.url, progress)


def saved_sources(hub: Hub) -> list[m.FeedSource]:
    """Every saved remote source, by name."""
    from sqlalchemy import select

    with hub.session(write=False) as session:
        rows = list(session.scalars(select(m.FeedSource).order_by(m.FeedSource.name)))
        for row in rows:
            session.expunge(row)
        return rows
