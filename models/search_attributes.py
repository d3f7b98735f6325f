"""Custom search attributes (all Keyword) that make runs findable with `temporal workflow list --query`."""

from __future__ import annotations

import re

from temporalio.common import SearchAttributeKey

AGENT_NAME = SearchAttributeKey.for_keyword("AgentName")
AGENT_STATUS = SearchAttributeKey.for_keyword("AgentStatus")
AGENT_PATTERN = SearchAttributeKey.for_keyword("AgentPattern")
CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
TENANT_ID = SearchAttributeKey.for_keyword("TenantId")
"""The gateway tenant that started a run (set at start by the gateway; runs without it belong to `default`)."""
TENANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""A tenant name: it is written into a search attribute and a visibility query, so no quotes or spaces."""

ALL_KEYS = (AGENT_NAME, AGENT_STATUS, AGENT_PATTERN, CUSTOMER_ID, TENANT_ID)
