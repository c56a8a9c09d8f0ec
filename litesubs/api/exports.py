"""CSV exports for the signed-in creator, authenticated by the same session cookie as the pages."""

from collections.abc import Callable, Iterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from litesubs.services import accounts
from litesubs.services.customer_directory import export_customers_csv, export_ledger_csv

router = APIRouter()


def _csv_download(
    request: Request, export: Callable[..., Iterator[str]], filename: str
) -> StreamingResponse | JSONResponse:
    user = accounts.user_for_token(token=request.cookies.get(accounts.SESSION_COOKIE))
    if user is None:
        return JSONResponse({"error": {"code": "unauthorized", "message": "Sign in to export."}}, status_code=401)
    return StreamingResponse(
        export(creator_id=user.id),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


@router.get("/api/exports/customers.csv", include_in_schema=False, response_model=None)
def customers_csv(request: Request) -> StreamingResponse | JSONResponse:
    return _csv_download(request, export_customers_csv, "customers.csv")


@router.get("/api/exports/ledger.csv", include_in_schema=False, response_model=None)
def ledger_csv(request: Request) -> StreamingResponse | JSONResponse:
    return _csv_download(request, export_ledger_csv, "ledger.csv")
