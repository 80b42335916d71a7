"""Query complexity: an estimate of how many fields a query resolves, checked after
validation and before anything runs.

Every field costs 1 plus what it selects; a field with a page-size argument (``first``,
``limit``) multiplies what it selects by that size (given literally or in a variable; its
default when not given; the largest page when it cannot be known); any other list multiplies
by ``list_factor`` (a guess at a typical fan-out); the lists of a connection (``edges``,
``nodes``) were paid for by the connection's page size. Introspection is free.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLObjectType,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
)
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

PAGE_ARGUMENTS = ("first", "limit")


class ComplexityLimiter(SchemaExtension):
    """Refuses operations whose estimated cost exceeds ``max_complexity`` (error code
    ``QUERY_TOO_COMPLEX``). Put it after ``ValidationCache``: only valid documents are
    measured."""

    def __init__(self, max_complexity: int, *, list_factor: int = 10, max_page: int = 500) -> None:
        super().__init__()
        self.max_complexity = max_complexity
        self.list_factor = list_factor
        self.max_page = max_page

    def on_validate(self) -> Iterator[None]:
        ctx = self.execution_context
        document = ctx.graphql_document
        if document is not None and ctx.pre_execution_errors is None:
            ctx.pre_execution_errors = validate_document(
                ctx.schema._schema, document, ctx.validation_rules
            )
        if document is not None and not ctx.pre_execution_errors:
            cost = self.cost(
                ctx.schema._schema, document.definitions, ctx.operation_name, ctx.variables or {}
            )
            if cost > self.max_complexity:
                ctx.pre_execution_errors = [
                    GraphQLError(
                        f"query complexity {cost} exceeds the limit of {self.max_complexity}: "
                        "ask for smaller pages or fewer nested lists",
                        extensions={
                            "code": "QUERY_TOO_COMPLEX",
                            "complexity": cost,
                            "limit": self.max_complexity,
                        },
                    )
                ]
        yield

    def cost(
        self,
        schema: Any,
        definitions: Any,
        operation_name: str | None,
        variables: Mapping[str, Any],
    ) -> int:
        operations = [d for d in definitions if isinstance(d, OperationDefinitionNode)]
        chosen = [
            op
            for op in operations
            if operation_name is None or (op.name is not None and op.name.value == operation_name)
        ]
        fragments = {d.name.value: d for d in definitions if isinstance(d, FragmentDefinitionNode)}
        total = 0
        for op in chosen[:1]:
            root = schema.get_root_type(op.operation)
            if root is not None:
                total += _cost(
                    op.selection_set,
                    root,
                    fragments,
                    schema,
                    _Sizes(variables, self.list_factor, self.max_page),
                    (),
                )
        return total


class _Sizes:
    def __init__(self, variables: Mapping[str, Any], list_factor: int, max_page: int) -> None:
        self.variables = variables
        self.list_factor = list_factor
        self.max_page = max_page


def _page_size(node: FieldNode, field_def: Any, sizes: _Sizes) -> int | None:
    max_page = sizes.max_page
    for arg in node.arguments or ():
        if arg.name.value in PAGE_ARGUMENTS:
            value: Any = None
            if isinstance(arg.value, IntValueNode):
                value = int(arg.value.value)
            elif isinstance(arg.value, VariableNode):
                value = sizes.variables.get(arg.value.name.value)
            if isinstance(value, int) and not isinstance(value, bool):
                return max(0, min(value, max_page))
            return max_page
    for name in PAGE_ARGUMENTS:
        spec = field_def.args.get(name)
        if spec is not None:
            default = spec.default_value
            return default if isinstance(default, int) else max_page
    return None


def _cost(
    selection_set: SelectionSetNode | None,
    parent: Any,
    fragments: dict[str, FragmentDefinitionNode],
    schema: Any,
    sizes: _Sizes,
    visiting: tuple[str, ...],
) -> int:
    if selection_set is None:
        return 0
    total = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            name = selection.name.value
            if name.startswith("__"):
                continue
            fields = getattr(parent, "fields", None)
            field_def = fields.get(name) if fields else None
            if field_def is None:
                continue  # other rules report unknown fields
            named = get_named_type(field_def.type)
            inner = _cost(selection.selection_set, named, fragments, schema, sizes, visiting)
            size = _page_size(selection, field_def, sizes)
            if size is None:
                is_list = isinstance(get_nullable_type(field_def.type), GraphQLList)
                in_connection = isinstance(parent, GraphQLObjectType) and parent.name.endswith(
                    "Connection"
                )
                size = sizes.list_factor if is_list and not in_connection else 1
            total += 1 + size * inner
        elif isinstance(selection, InlineFragmentNode):
            target = parent
            if selection.type_condition is not None:
                target = schema.get_type(selection.type_condition.name.value) or parent
            total += _cost(selection.selection_set, target, fragments, schema, sizes, visiting)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is None or name in visiting:
                continue  # unknown or cyclic fragments are other rules' business
            target = schema.get_type(fragment.type_condition.name.value) or parent
            total += _cost(
                fragment.selection_set,
                target,
                fragments,
                schema,
                sizes,
                (*visiting, name),
            )
    return total
