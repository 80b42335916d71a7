"""What every resolver gets: the services, who is asking, and this request's loaders."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import strawberry
from strawberry.fastapi import BaseContext

from servicegraph.access.model import Principal
from servicegraph.bootstrap import Services
from servicegraph.cmdb.context import change_context

if TYPE_CHECKING:
    from servicegraph.graphql.loaders import Loaders

T = TypeVar("T")


class GraphQLContext(BaseContext):
    def __init__(self, services: Services, principal: Principal | None) -> None:
        super().__init__()
        self.services = services
        self.principal = principal
        self.request_id = uuid.uuid4().hex
        self._loaders: Loaders | None = None

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            from servicegraph.graphql.loaders import Loaders

            self._loaders = Loaders(self.services)
        return self._loaders

    def fresh_loaders(self) -> None:
        """Forget what this context's loaders cached (a subscription's next event must not
        show the CIs and incidents of the previous one)."""
        self._loaders = None

    async def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a service call that writes in a worker thread (it may wait for the store's
        write lock), recording the token's holder (else its name) as the actor of every
        change."""
        actor = self.principal.actor if self.principal is not None else "anonymous"

        def call() -> T:
            with change_context(actor=actor, request_id=self.request_id):
                return fn(*args, **kwargs)

        return await asyncio.to_thread(functools.partial(call))


Info = strawberry.Info[GraphQLContext, None]
