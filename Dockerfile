# One image for the gateway, the worker and the one-shot migration.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY frontdesk frontdesk
COPY gateway gateway
COPY channels channels
COPY booking_core booking_core
COPY workers workers
COPY infra infra
COPY devtools devtools
COPY templates templates
COPY migrations migrations
COPY alembic.ini ./
RUN pip install -e .
RUN useradd --system --home /app frontdesk
USER frontdesk
EXPOSE 8080
CMD ["frontdesk", "serve", "--host", "0.0.0.0", "--port", "8080"]
