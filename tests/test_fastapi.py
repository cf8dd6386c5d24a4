"""ferrosession.fastapi against the real FastAPI: the typed dependency, the request's
sessions, routers and sub-dependencies, WebSockets, OpenAPI and the missing middleware."""

import os
from dataclasses import dataclass
from typing import Annotated, Optional

import pydantic
import pytest
from fastapi import APIRouter, Depends, FastAPI, WebSocket
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

import ferrosession as fs
from ferrosession.fastapi import current_sessions, session

KEY = os.urandom(32)


@dataclass(frozen=True)
class Login:
    user: str


class Prefs(pydantic.BaseModel):
    theme: str
    font_size: int = 12


@dataclass(frozen=True)
class ApiToken:
    scope: str


def make_app(*, server: bool) -> FastAPI:
    sessions = fs.Sessions()
    if server:
        sessions.cookie(Login, "SID", fs.MemoryStorage(), principal=lambda s: s.user)
    else:
        sessions.cookie(Login, "SID", transformers=[fs.MessageAuthentication(KEY)])
    sessions.cookie(Prefs, "PREFS", transformers=[fs.MessageAuthentication(KEY)])
    sessions.header(ApiToken, "X-Session", fs.MemoryStorage())

    app = FastAPI()
    app.add_middleware(fs.SessionMiddleware, sessions=sessions)
    Sessions = Annotated[fs.CurrentSessions, Depends(current_sessions)]
    MaybeLogin = Annotated[Optional[Login], Depends(session(Login))]
    RequiredLogin = Annotated[Login, Depends(session(Login, required=True))]

    @app.post("/login/{user}")
    def log_in(user: str, s: Sessions) -> str:
        s.set(Login(user))
        s.regenerate(Login)
        return "ok"

    @app.post("/logout")
    async def log_out(s: Sessions) -> str:
        s.clear(Login)
        return "bye"

    @app.get("/maybe")
    def maybe(login: MaybeLogin) -> Optional[str]:
        return login.user if login else None

    @app.get("/me")
    async def me(login: RequiredLogin) -> str:
        return login.user

    def greeting(login: RequiredLogin) -> str:  # a sub-dependency
        return f"hello {login.user}"

    @app.get("/greet")
    async def greet(text: Annotated[str, Depends(greeting)]) -> str:
        return text

    @app.put("/prefs/{theme}")
    async def put_prefs(theme: str, s: Sessions) -> str:
        s.set(Prefs(theme=theme))
        return "ok"

    @app.get("/prefs")
    def get_prefs(prefs: Annotated[Optional[Prefs], Depends(session("PREFS"))]) -> object:
        return prefs.model_dump() if prefs else None

    @app.post("/token/{scope}")
    def token(scope: str, s: Sessions) -> str:
        s.set(ApiToken(scope))
        return "ok"

    @app.get("/token")
    def read_token(tok: Annotated[ApiToken, Depends(session(ApiToken, required=True))]) -> str:
        return tok.scope

    admin = APIRouter(prefix="/admin", dependencies=[Depends(session(Login, required=True))])

    @admin.get("/panel")
    def panel() -> str:
        return "panel"

    @admin.post("/everywhere")
    def everywhere(login: RequiredLogin, s: Sessions) -> str:
        s.invalidate_all(Login, login.user)
        return "done"

    app.include_router(admin)

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, login: MaybeLogin, s: Sessions) -> None:
        await websocket.accept()
        await websocket.send_text(login.user if login else "nobody")
        try:
            s.set(Login("mallory"))
        except fs.TooLateSessionSet as e:
            await websocket.send_text(f"too late: {e}")
        await websocket.close()

    @app.websocket("/ws/required")
    async def ws_required(websocket: WebSocket, login: RequiredLogin) -> None:
        await websocket.accept()
        await websocket.send_text(login.user)
        await websocket.close()

    return app


@pytest.fixture(params=["server", "client"])
def client(request: pytest.FixtureRequest) -> TestClient:
    return TestClient(make_app(server=request.param == "server"))


def test_optional_session_is_none_then_the_value(client: TestClient) -> None:
    assert client.get("/maybe").json() is None
    assert client.post("/login/ann").json() == "ok"
    assert client.get("/maybe").json() == "ann"
    assert client.post("/logout").json() == "bye"
    assert client.get("/maybe").json() is None


def test_required_session_answers_401_like_fastapi_security(client: TestClient) -> None:
    r = client.get("/me")
    assert r.status_code == 401
    assert r.json() == {"detail": "Not authenticated"}
    assert r.headers["www-authenticate"] == "APIKey"
    client.post("/login/ann")
    assert client.get("/me").json() == "ann"


def test_a_forged_cookie_is_an_absent_session(client: TestClient) -> None:
    client.post("/login/ann")
    cookie = client.cookies["SID"]
    client.cookies.set("SID", cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB"))
    assert client.get("/me").status_code == 401
    assert client.get("/maybe").json() is None


def test_sub_dependency_and_router_dependencies(client: TestClient) -> None:
    assert client.get("/greet").status_code == 401
    assert client.get("/admin/panel").status_code == 401
    client.post("/login/ann")
    assert client.get("/greet").json() == "hello ann"
    assert client.get("/admin/panel").json() == "panel"


def test_pydantic_model_by_name(client: TestClient) -> None:
    assert client.get("/prefs").json() is None
    client.put("/prefs/dark")
    assert client.get("/prefs").json() == {"theme": "dark", "font_size": 12}


def test_header_session(client: TestClient) -> None:
    assert client.get("/token").status_code == 401
    r = client.post("/token/read")
    header = r.headers["x-session"]
    assert client.get("/token", headers={"X-Session": header}).json() == "read"


def test_invalidate_all_logs_out_the_other_devices() -> None:
    app = make_app(server=True)
    phone, laptop = TestClient(app), TestClient(app)
    phone.post("/login/ann")
    laptop.post("/login/ann")
    assert phone.post("/admin/everywhere").json() == "done"
    assert phone.get("/me").json() == "ann"  # keep_current
    assert laptop.get("/me").status_code == 401


def test_websocket_reads_the_session_and_set_after_accept_is_an_error(
    client: TestClient,
) -> None:
    with client.websocket_connect("/ws") as ws:
        assert ws.receive_text() == "nobody"
        assert ws.receive_text().startswith("too late: it is too late to set a session")
    client.post("/login/ann")
    with client.websocket_connect("/ws") as ws:
        assert ws.receive_text() == "ann"
        ws.receive_text()
    with client.websocket_connect("/ws/required") as ws:
        assert ws.receive_text() == "ann"
    assert client.get("/me").json() == "ann"  # the refused set changed nothing


def test_websocket_required_session_closes_with_policy_violation() -> None:
    client = TestClient(make_app(server=False))
    with pytest.raises(WebSocketDisconnect) as e, client.websocket_connect("/ws/required") as ws:
        ws.receive_text()
    assert e.value.code == 1008


def test_openapi_lists_the_session_as_an_api_key_scheme() -> None:
    spec = TestClient(make_app(server=True)).get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["session_SID"] == {
        "type": "apiKey",
        "in": "cookie",
        "name": "SID",
        "description": "ferrosession Login session",
    }
    assert schemes["session_X-Session"]["in"] == "header"
    assert schemes["session_X-Session"]["name"] == "X-Session"
    assert schemes["session_PREFS"]["name"] == "PREFS"
    paths = spec["paths"]
    assert paths["/me"]["get"]["security"] == [{"session_SID": []}]
    assert paths["/maybe"]["get"]["security"] == [{"session_SID": []}]
    assert paths["/greet"]["get"]["security"] == [{"session_SID": []}]
    assert paths["/admin/panel"]["get"]["security"] == [{"session_SID": []}]
    assert paths["/token"]["get"]["security"] == [{"session_X-Session": []}]
    assert "security" not in paths["/login/{user}"]["post"]  # current_sessions only


def test_an_unregistered_type_names_the_fix_when_the_schema_is_built() -> None:
    @dataclass(frozen=True)
    class Nowhere:
        x: int

    app = FastAPI()

    @app.get("/")
    def root(v: Annotated[Optional[Nowhere], Depends(session(Nowhere))]) -> None:
        return None

    with pytest.raises(fs.SessionNotRegistered, match=r"register it with Sessions\.cookie"):
        app.openapi()


def test_without_the_middleware_it_is_sessions_not_installed() -> None:
    app = FastAPI()

    @app.get("/maybe")
    def maybe(login: Annotated[Optional[Login], Depends(session(Login))]) -> None:
        return None

    @app.get("/s")
    def s(s: Annotated[fs.CurrentSessions, Depends(current_sessions)]) -> None:
        return None

    client = TestClient(app)
    with pytest.raises(fs.SessionsNotInstalled):
        client.get("/maybe")
    with pytest.raises(fs.SessionsNotInstalled):
        client.get("/s")


def test_a_msgspec_struct_session() -> None:
    import msgspec

    class Cart(msgspec.Struct, frozen=True):
        items: list[str]

    sessions = fs.Sessions()
    sessions.cookie(Cart, "CART", transformers=[fs.MessageAuthentication(KEY)])
    app = FastAPI()
    app.add_middleware(fs.SessionMiddleware, sessions=sessions)

    @app.post("/add/{item}")
    async def add(
        item: str,
        cart: Annotated[Optional[Cart], Depends(session(Cart))],
        s: Annotated[fs.CurrentSessions, Depends(current_sessions)],
    ) -> int:
        items = [*(cart.items if cart else []), item]
        s.set(Cart(items))
        return len(items)

    @app.get("/cart")
    def get_cart(cart: Annotated[Cart, Depends(session(Cart, required=True))]) -> list[str]:
        return cart.items

    client = TestClient(app)
    assert client.get("/cart").status_code == 401
    assert client.post("/add/tea").json() == 1
    assert client.post("/add/milk").json() == 2
    assert client.get("/cart").json() == ["tea", "milk"]
