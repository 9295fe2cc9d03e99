import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_UNSPECIFIED: _ClassVar[Outcome]
    OUTCOME_APPROVE: _ClassVar[Outcome]
    OUTCOME_REJECT: _ClassVar[Outcome]
    OUTCOME_MANUAL_REVIEW: _ClassVar[Outcome]

class ItemType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ITEM_TYPE_UNSPECIFIED: _ClassVar[ItemType]
    ITEM_TYPE_LICENSING: _ClassVar[ItemType]
    ITEM_TYPE_BENEFIT_PAYMENT: _ClassVar[ItemType]
    ITEM_TYPE_CONFIRMATION: _ClassVar[ItemType]
    ITEM_TYPE_FILING: _ClassVar[ItemType]
    ITEM_TYPE_AWARD: _ClassVar[ItemType]
    ITEM_TYPE_ADJUDICATION: _ClassVar[ItemType]
    ITEM_TYPE_OTHER_POWER: _ClassVar[ItemType]
    ITEM_TYPE_PUBLIC_SERVICE: _ClassVar[ItemType]

class FieldType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FIELD_TYPE_UNSPECIFIED: _ClassVar[FieldType]
    FIELD_TYPE_STRING: _ClassVar[FieldType]
    FIELD_TYPE_INTEGER: _ClassVar[FieldType]
    FIELD_TYPE_NUMBER: _ClassVar[FieldType]
    FIELD_TYPE_BOOLEAN: _ClassVar[FieldType]
    FIELD_TYPE_DATE: _ClassVar[FieldType]
    FIELD_TYPE_ENUM: _ClassVar[FieldType]
    FIELD_TYPE_STRING_LIST: _ClassVar[FieldType]
    FIELD_TYPE_REGION_CODE: _ClassVar[FieldType]
    FIELD_TYPE_RESIDENT_ID: _ClassVar[FieldType]
    FIELD_TYPE_CREDIT_CODE: _ClassVar[FieldType]

class MaterialNeed(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MATERIAL_NEED_UNSPECIFIED: _ClassVar[MaterialNeed]
    MATERIAL_NEED_REQUIRED: _ClassVar[MaterialNeed]
    MATERIAL_NEED_OPTIONAL: _ClassVar[MaterialNeed]
    MATERIAL_NEED_DEFERRABLE: _ClassVar[MaterialNeed]
OUTCOME_UNSPECIFIED: Outcome
OUTCOME_APPROVE: Outcome
OUTCOME_REJECT: Outcome
OUTCOME_MANUAL_REVIEW: Outcome
ITEM_TYPE_UNSPECIFIED: ItemType
ITEM_TYPE_LICENSING: ItemType
ITEM_TYPE_BENEFIT_PAYMENT: ItemType
ITEM_TYPE_CONFIRMATION: ItemType
ITEM_TYPE_FILING: ItemType
ITEM_TYPE_AWARD: ItemType
ITEM_TYPE_ADJUDICATION: ItemType
ITEM_TYPE_OTHER_POWER: ItemType
ITEM_TYPE_PUBLIC_SERVICE: ItemType
FIELD_TYPE_UNSPECIFIED: FieldType
FIELD_TYPE_STRING: FieldType
FIELD_TYPE_INTEGER: FieldType
FIELD_TYPE_NUMBER: FieldType
FIELD_TYPE_BOOLEAN: FieldType
FIELD_TYPE_DATE: FieldType
FIELD_TYPE_ENUM: FieldType
FIELD_TYPE_STRING_LIST: FieldType
FIELD_TYPE_REGION_CODE: FieldType
FIELD_TYPE_RESIDENT_ID: FieldType
FIELD_TYPE_CREDIT_CODE: FieldType
MATERIAL_NEED_UNSPECIFIED: MaterialNeed
MATERIAL_NEED_REQUIRED: MaterialNeed
MATERIAL_NEED_OPTIONAL: MaterialNeed
MATERIAL_NEED_DEFERRABLE: MaterialNeed

class Window(_message.Message):
    __slots__ = ("window_id", "operator_id", "principal_id")
    WINDOW_ID_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_ID_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_ID_FIELD_NUMBER: _ClassVar[int]
    window_id: str
    operator_id: str
    principal_id: str
    def __init__(self, window_id: _Optional[str] = ..., operator_id: _Optional[str] = ..., principal_id: _Optional[str] = ...) -> None: ...

class DecideRequest(_message.Message):
    __slots__ = ("request_id", "item_code", "facts", "materials", "window", "consent")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_CODE_FIELD_NUMBER: _ClassVar[int]
    FACTS_FIELD_NUMBER: _ClassVar[int]
    MATERIALS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    item_code: str
    facts: _struct_pb2.Struct
    materials: _containers.RepeatedScalarFieldContainer[str]
    window: Window
    consent: Consent
    def __init__(self, request_id: _Optional[str] = ..., item_code: _Optional[str] = ..., facts: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., materials: _Optional[_Iterable[str]] = ..., window: _Optional[_Union[Window, _Mapping]] = ..., consent: _Optional[_Union[Consent, _Mapping]] = ...) -> None: ...

class Consent(_message.Message):
    __slots__ = ("reference",)
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    reference: str
    def __init__(self, reference: _Optional[str] = ...) -> None: ...

class DecideResponse(_message.Message):
    __slots__ = ("decision",)
    DECISION_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    def __init__(self, decision: _Optional[_Union[Decision, _Mapping]] = ...) -> None: ...

class LegalBasis(_message.Message):
    __slots__ = ("id", "law", "article", "citation")
    ID_FIELD_NUMBER: _ClassVar[int]
    LAW_FIELD_NUMBER: _ClassVar[int]
    ARTICLE_FIELD_NUMBER: _ClassVar[int]
    CITATION_FIELD_NUMBER: _ClassVar[int]
    id: str
    law: str
    article: str
    citation: str
    def __init__(self, id: _Optional[str] = ..., law: _Optional[str] = ..., article: _Optional[str] = ..., citation: _Optional[str] = ...) -> None: ...

class FactValue(_message.Message):
    __slots__ = ("path", "value", "missing")
    PATH_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    path: str
    value: _struct_pb2.Value
    missing: bool
    def __init__(self, path: _Optional[str] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., missing: _Optional[bool] = ...) -> None: ...

class Reason(_message.Message):
    __slots__ = ("rule_id", "outcome", "message", "legal_basis", "facts_read", "condition")
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LEGAL_BASIS_FIELD_NUMBER: _ClassVar[int]
    FACTS_READ_FIELD_NUMBER: _ClassVar[int]
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    rule_id: str
    outcome: Outcome
    message: str
    legal_basis: LegalBasis
    facts_read: _containers.RepeatedCompositeFieldContainer[FactValue]
    condition: str
    def __init__(self, rule_id: _Optional[str] = ..., outcome: _Optional[_Union[Outcome, str]] = ..., message: _Optional[str] = ..., legal_basis: _Optional[_Union[LegalBasis, _Mapping]] = ..., facts_read: _Optional[_Iterable[_Union[FactValue, _Mapping]]] = ..., condition: _Optional[str] = ...) -> None: ...

class MaterialRef(_message.Message):
    __slots__ = ("id", "name", "e_license")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    E_LICENSE_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    e_license: bool
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., e_license: _Optional[bool] = ...) -> None: ...

class RulesetRef(_message.Message):
    __slots__ = ("item_code", "version", "digest")
    ITEM_CODE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    item_code: str
    version: str
    digest: str
    def __init__(self, item_code: _Optional[str] = ..., version: _Optional[str] = ..., digest: _Optional[str] = ...) -> None: ...

class Decision(_message.Message):
    __slots__ = ("decision_id", "request_id", "item_code", "outcome", "reasons", "missing_materials", "pending_materials", "outputs", "ruleset", "as_of_date", "decided_at", "review_due_date", "review_due_date_estimated", "derived_facts", "receipt", "provenance", "e_licenses", "sourced", "remedies", "dry_run")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_CODE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    MISSING_MATERIALS_FIELD_NUMBER: _ClassVar[int]
    PENDING_MATERIALS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    RULESET_FIELD_NUMBER: _ClassVar[int]
    AS_OF_DATE_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    REVIEW_DUE_DATE_FIELD_NUMBER: _ClassVar[int]
    REVIEW_DUE_DATE_ESTIMATED_FIELD_NUMBER: _ClassVar[int]
    DERIVED_FACTS_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    E_LICENSES_FIELD_NUMBER: _ClassVar[int]
    SOURCED_FIELD_NUMBER: _ClassVar[int]
    REMEDIES_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    request_id: str
    item_code: str
    outcome: Outcome
    reasons: _containers.RepeatedCompositeFieldContainer[Reason]
    missing_materials: _containers.RepeatedCompositeFieldContainer[MaterialRef]
    pending_materials: _containers.RepeatedCompositeFieldContainer[MaterialRef]
    outputs: _struct_pb2.Struct
    ruleset: RulesetRef
    as_of_date: str
    decided_at: _timestamp_pb2.Timestamp
    review_due_date: str
    review_due_date_estimated: bool
    derived_facts: _struct_pb2.Struct
    receipt: Receipt
    provenance: _containers.RepeatedCompositeFieldContainer[FactProvenance]
    e_licenses: _containers.RepeatedCompositeFieldContainer[ELicenseUse]
    sourced: SourcedData
    remedies: Remedies
    dry_run: bool
    def __init__(self, decision_id: _Optional[str] = ..., request_id: _Optional[str] = ..., item_code: _Optional[str] = ..., outcome: _Optional[_Union[Outcome, str]] = ..., reasons: _Optional[_Iterable[_Union[Reason, _Mapping]]] = ..., missing_materials: _Optional[_Iterable[_Union[MaterialRef, _Mapping]]] = ..., pending_materials: _Optional[_Iterable[_Union[MaterialRef, _Mapping]]] = ..., outputs: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., ruleset: _Optional[_Union[RulesetRef, _Mapping]] = ..., as_of_date: _Optional[str] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., review_due_date: _Optional[str] = ..., review_due_date_estimated: _Optional[bool] = ..., derived_facts: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., receipt: _Optional[_Union[Receipt, _Mapping]] = ..., provenance: _Optional[_Iterable[_Union[FactProvenance, _Mapping]]] = ..., e_licenses: _Optional[_Iterable[_Union[ELicenseUse, _Mapping]]] = ..., sourced: _Optional[_Union[SourcedData, _Mapping]] = ..., remedies: _Optional[_Union[Remedies, _Mapping]] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class Remedies(_message.Message):
    __slots__ = ("review_body", "review_days", "court", "litigation_months", "notice", "legal_basis")
    REVIEW_BODY_FIELD_NUMBER: _ClassVar[int]
    REVIEW_DAYS_FIELD_NUMBER: _ClassVar[int]
    COURT_FIELD_NUMBER: _ClassVar[int]
    LITIGATION_MONTHS_FIELD_NUMBER: _ClassVar[int]
    NOTICE_FIELD_NUMBER: _ClassVar[int]
    LEGAL_BASIS_FIELD_NUMBER: _ClassVar[int]
    review_body: str
    review_days: int
    court: str
    litigation_months: int
    notice: str
    legal_basis: _containers.RepeatedCompositeFieldContainer[LegalBasis]
    def __init__(self, review_body: _Optional[str] = ..., review_days: _Optional[int] = ..., court: _Optional[str] = ..., litigation_months: _Optional[int] = ..., notice: _Optional[str] = ..., legal_basis: _Optional[_Iterable[_Union[LegalBasis, _Mapping]]] = ...) -> None: ...

class FactProvenance(_message.Message):
    __slots__ = ("path", "origin", "source", "record_id", "fetched_at", "note")
    PATH_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    FETCHED_AT_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    path: str
    origin: str
    source: str
    record_id: str
    fetched_at: str
    note: str
    def __init__(self, path: _Optional[str] = ..., origin: _Optional[str] = ..., source: _Optional[str] = ..., record_id: _Optional[str] = ..., fetched_at: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class ELicenseUse(_message.Message):
    __slots__ = ("material_id", "licence_type", "number", "fetched_at")
    MATERIAL_ID_FIELD_NUMBER: _ClassVar[int]
    LICENCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    FETCHED_AT_FIELD_NUMBER: _ClassVar[int]
    material_id: str
    licence_type: str
    number: str
    fetched_at: str
    def __init__(self, material_id: _Optional[str] = ..., licence_type: _Optional[str] = ..., number: _Optional[str] = ..., fetched_at: _Optional[str] = ...) -> None: ...

class SourcedData(_message.Message):
    __slots__ = ("consent", "lookups", "licences")
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    LOOKUPS_FIELD_NUMBER: _ClassVar[int]
    LICENCES_FIELD_NUMBER: _ClassVar[int]
    consent: str
    lookups: _containers.RepeatedCompositeFieldContainer[SourceLookup]
    licences: LicenceLookup
    def __init__(self, consent: _Optional[str] = ..., lookups: _Optional[_Iterable[_Union[SourceLookup, _Mapping]]] = ..., licences: _Optional[_Union[LicenceLookup, _Mapping]] = ...) -> None: ...

class SourceLookup(_message.Message):
    __slots__ = ("source", "key_path", "status", "record_id", "values", "fetched_at", "reason", "key")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    KEY_PATH_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    FETCHED_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    source: str
    key_path: str
    status: str
    record_id: str
    values: _struct_pb2.Struct
    fetched_at: str
    reason: str
    key: str
    def __init__(self, source: _Optional[str] = ..., key_path: _Optional[str] = ..., status: _Optional[str] = ..., record_id: _Optional[str] = ..., values: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., fetched_at: _Optional[str] = ..., reason: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class LicenceLookup(_message.Message):
    __slots__ = ("status", "fetched_at", "items")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FETCHED_AT_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    status: str
    fetched_at: str
    items: _containers.RepeatedCompositeFieldContainer[ELicense]
    def __init__(self, status: _Optional[str] = ..., fetched_at: _Optional[str] = ..., items: _Optional[_Iterable[_Union[ELicense, _Mapping]]] = ...) -> None: ...

class ELicense(_message.Message):
    __slots__ = ("licence_type", "holder_id", "number", "valid_from", "valid_until", "revoked")
    LICENCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    HOLDER_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    licence_type: str
    holder_id: str
    number: str
    valid_from: str
    valid_until: str
    revoked: bool
    def __init__(self, licence_type: _Optional[str] = ..., holder_id: _Optional[str] = ..., number: _Optional[str] = ..., valid_from: _Optional[str] = ..., valid_until: _Optional[str] = ..., revoked: _Optional[bool] = ...) -> None: ...

class Receipt(_message.Message):
    __slots__ = ("seq", "prev_hash", "case_digest", "node_id", "window", "record_hash", "key_id", "signature", "tree_head", "inclusion_proof")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    PREV_HASH_FIELD_NUMBER: _ClassVar[int]
    CASE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    RECORD_HASH_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    TREE_HEAD_FIELD_NUMBER: _ClassVar[int]
    INCLUSION_PROOF_FIELD_NUMBER: _ClassVar[int]
    seq: int
    prev_hash: str
    case_digest: str
    node_id: str
    window: Window
    record_hash: str
    key_id: str
    signature: bytes
    tree_head: TreeHead
    inclusion_proof: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, seq: _Optional[int] = ..., prev_hash: _Optional[str] = ..., case_digest: _Optional[str] = ..., node_id: _Optional[str] = ..., window: _Optional[_Union[Window, _Mapping]] = ..., record_hash: _Optional[str] = ..., key_id: _Optional[str] = ..., signature: _Optional[bytes] = ..., tree_head: _Optional[_Union[TreeHead, _Mapping]] = ..., inclusion_proof: _Optional[_Iterable[str]] = ...) -> None: ...

class TreeHead(_message.Message):
    __slots__ = ("tree_size", "root_hash", "timestamp", "key_id", "signature")
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    ROOT_HASH_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    tree_size: int
    root_hash: str
    timestamp: int
    key_id: str
    signature: bytes
    def __init__(self, tree_size: _Optional[int] = ..., root_hash: _Optional[str] = ..., timestamp: _Optional[int] = ..., key_id: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...

class GetDecisionRequest(_message.Message):
    __slots__ = ("decision_id",)
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    def __init__(self, decision_id: _Optional[str] = ...) -> None: ...

class GetDecisionResponse(_message.Message):
    __slots__ = ("decision", "case", "case_purged")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    CASE_FIELD_NUMBER: _ClassVar[int]
    CASE_PURGED_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    case: _struct_pb2.Struct
    case_purged: bool
    def __init__(self, decision: _Optional[_Union[Decision, _Mapping]] = ..., case: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., case_purged: _Optional[bool] = ...) -> None: ...

class ListDecisionsRequest(_message.Message):
    __slots__ = ("item_code", "outcome", "window_id", "decided_from", "decided_to", "page_size", "page_token", "include_cases")
    ITEM_CODE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    WINDOW_ID_FIELD_NUMBER: _ClassVar[int]
    DECIDED_FROM_FIELD_NUMBER: _ClassVar[int]
    DECIDED_TO_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_CASES_FIELD_NUMBER: _ClassVar[int]
    item_code: str
    outcome: Outcome
    window_id: str
    decided_from: _timestamp_pb2.Timestamp
    decided_to: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    include_cases: bool
    def __init__(self, item_code: _Optional[str] = ..., outcome: _Optional[_Union[Outcome, str]] = ..., window_id: _Optional[str] = ..., decided_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., decided_to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., include_cases: _Optional[bool] = ...) -> None: ...

class ListDecisionsResponse(_message.Message):
    __slots__ = ("decisions", "next_page_token", "cases", "case_purged")
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CASES_FIELD_NUMBER: _ClassVar[int]
    CASE_PURGED_FIELD_NUMBER: _ClassVar[int]
    decisions: _containers.RepeatedCompositeFieldContainer[Decision]
    next_page_token: str
    cases: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Struct]
    case_purged: _containers.RepeatedScalarFieldContainer[bool]
    def __init__(self, decisions: _Optional[_Iterable[_Union[Decision, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., cases: _Optional[_Iterable[_Union[_struct_pb2.Struct, _Mapping]]] = ..., case_purged: _Optional[_Iterable[bool]] = ...) -> None: ...

class VerifyAuditTrailRequest(_message.Message):
    __slots__ = ("from_seq", "to_seq")
    FROM_SEQ_FIELD_NUMBER: _ClassVar[int]
    TO_SEQ_FIELD_NUMBER: _ClassVar[int]
    from_seq: int
    to_seq: int
    def __init__(self, from_seq: _Optional[int] = ..., to_seq: _Optional[int] = ...) -> None: ...

class VerifyAuditTrailResponse(_message.Message):
    __slots__ = ("ok", "checked", "first_bad_seq", "reason", "purged")
    OK_FIELD_NUMBER: _ClassVar[int]
    CHECKED_FIELD_NUMBER: _ClassVar[int]
    FIRST_BAD_SEQ_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PURGED_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    checked: int
    first_bad_seq: int
    reason: str
    purged: int
    def __init__(self, ok: _Optional[bool] = ..., checked: _Optional[int] = ..., first_bad_seq: _Optional[int] = ..., reason: _Optional[str] = ..., purged: _Optional[int] = ...) -> None: ...

class PurgeCasesRequest(_message.Message):
    __slots__ = ("before",)
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    before: _timestamp_pb2.Timestamp
    def __init__(self, before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PurgeCasesResponse(_message.Message):
    __slots__ = ("purged", "seq")
    PURGED_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    purged: int
    seq: int
    def __init__(self, purged: _Optional[int] = ..., seq: _Optional[int] = ...) -> None: ...

class GetSealKeyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetSealKeyResponse(_message.Message):
    __slots__ = ("key_id", "public_key", "public_key_pem")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    public_key: bytes
    public_key_pem: str
    def __init__(self, key_id: _Optional[str] = ..., public_key: _Optional[bytes] = ..., public_key_pem: _Optional[str] = ...) -> None: ...

class GetConsistencyProofRequest(_message.Message):
    __slots__ = ("first_tree_size", "second_tree_size")
    FIRST_TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    SECOND_TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    first_tree_size: int
    second_tree_size: int
    def __init__(self, first_tree_size: _Optional[int] = ..., second_tree_size: _Optional[int] = ...) -> None: ...

class GetConsistencyProofResponse(_message.Message):
    __slots__ = ("second", "proof")
    SECOND_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    second: TreeHead
    proof: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, second: _Optional[_Union[TreeHead, _Mapping]] = ..., proof: _Optional[_Iterable[str]] = ...) -> None: ...

class ListItemsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListItemsResponse(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Item]
    def __init__(self, items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ...) -> None: ...

class GetItemRequest(_message.Message):
    __slots__ = ("item_code",)
    ITEM_CODE_FIELD_NUMBER: _ClassVar[int]
    item_code: str
    def __init__(self, item_code: _Optional[str] = ...) -> None: ...

class GetItemResponse(_message.Message):
    __slots__ = ("item",)
    ITEM_FIELD_NUMBER: _ClassVar[int]
    item: Item
    def __init__(self, item: _Optional[_Union[Item, _Mapping]] = ...) -> None: ...

class TimeLimit(_message.Message):
    __slots__ = ("statutory_working_days", "promised_working_days", "on_the_spot")
    STATUTORY_WORKING_DAYS_FIELD_NUMBER: _ClassVar[int]
    PROMISED_WORKING_DAYS_FIELD_NUMBER: _ClassVar[int]
    ON_THE_SPOT_FIELD_NUMBER: _ClassVar[int]
    statutory_working_days: int
    promised_working_days: int
    on_the_spot: bool
    def __init__(self, statutory_working_days: _Optional[int] = ..., promised_working_days: _Optional[int] = ..., on_the_spot: _Optional[bool] = ...) -> None: ...

class EnumValue(_message.Message):
    __slots__ = ("value", "label")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    value: str
    label: str
    def __init__(self, value: _Optional[str] = ..., label: _Optional[str] = ...) -> None: ...

class FormField(_message.Message):
    __slots__ = ("path", "label", "type", "required", "allowed_values", "min", "max", "exclusive_min", "min_length", "max_length", "min_items", "default_value", "derived", "description", "prefilled_from", "required_when", "absent_when")
    PATH_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_VALUES_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    EXCLUSIVE_MIN_FIELD_NUMBER: _ClassVar[int]
    MIN_LENGTH_FIELD_NUMBER: _ClassVar[int]
    MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    MIN_ITEMS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VALUE_FIELD_NUMBER: _ClassVar[int]
    DERIVED_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PREFILLED_FROM_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_WHEN_FIELD_NUMBER: _ClassVar[int]
    ABSENT_WHEN_FIELD_NUMBER: _ClassVar[int]
    path: str
    label: str
    type: FieldType
    required: bool
    allowed_values: _containers.RepeatedCompositeFieldContainer[EnumValue]
    min: float
    max: float
    exclusive_min: bool
    min_length: int
    max_length: int
    min_items: int
    default_value: _struct_pb2.Value
    derived: bool
    description: str
    prefilled_from: str
    required_when: str
    absent_when: str
    def __init__(self, path: _Optional[str] = ..., label: _Optional[str] = ..., type: _Optional[_Union[FieldType, str]] = ..., required: _Optional[bool] = ..., allowed_values: _Optional[_Iterable[_Union[EnumValue, _Mapping]]] = ..., min: _Optional[float] = ..., max: _Optional[float] = ..., exclusive_min: _Optional[bool] = ..., min_length: _Optional[int] = ..., max_length: _Optional[int] = ..., min_items: _Optional[int] = ..., default_value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., derived: _Optional[bool] = ..., description: _Optional[str] = ..., prefilled_from: _Optional[str] = ..., required_when: _Optional[str] = ..., absent_when: _Optional[str] = ...) -> None: ...

class Material(_message.Message):
    __slots__ = ("id", "name", "need", "e_license", "condition", "e_license_type")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NEED_FIELD_NUMBER: _ClassVar[int]
    E_LICENSE_FIELD_NUMBER: _ClassVar[int]
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    E_LICENSE_TYPE_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    need: MaterialNeed
    e_license: bool
    condition: str
    e_license_type: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., need: _Optional[_Union[MaterialNeed, str]] = ..., e_license: _Optional[bool] = ..., condition: _Optional[str] = ..., e_license_type: _Optional[str] = ...) -> None: ...

class Item(_message.Message):
    __slots__ = ("code", "name", "type", "type_name", "department", "legal_basis", "time_limit", "form_fields", "materials", "ruleset", "versions", "remedies")
    CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TYPE_NAME_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    LEGAL_BASIS_FIELD_NUMBER: _ClassVar[int]
    TIME_LIMIT_FIELD_NUMBER: _ClassVar[int]
    FORM_FIELDS_FIELD_NUMBER: _ClassVar[int]
    MATERIALS_FIELD_NUMBER: _ClassVar[int]
    RULESET_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    REMEDIES_FIELD_NUMBER: _ClassVar[int]
    code: str
    name: str
    type: ItemType
    type_name: str
    department: str
    legal_basis: _containers.RepeatedCompositeFieldContainer[LegalBasis]
    time_limit: TimeLimit
    form_fields: _containers.RepeatedCompositeFieldContainer[FormField]
    materials: _containers.RepeatedCompositeFieldContainer[Material]
    ruleset: RulesetRef
    versions: _containers.RepeatedCompositeFieldContainer[RulesetVersion]
    remedies: Remedies
    def __init__(self, code: _Optional[str] = ..., name: _Optional[str] = ..., type: _Optional[_Union[ItemType, str]] = ..., type_name: _Optional[str] = ..., department: _Optional[str] = ..., legal_basis: _Optional[_Iterable[_Union[LegalBasis, _Mapping]]] = ..., time_limit: _Optional[_Union[TimeLimit, _Mapping]] = ..., form_fields: _Optional[_Iterable[_Union[FormField, _Mapping]]] = ..., materials: _Optional[_Iterable[_Union[Material, _Mapping]]] = ..., ruleset: _Optional[_Union[RulesetRef, _Mapping]] = ..., versions: _Optional[_Iterable[_Union[RulesetVersion, _Mapping]]] = ..., remedies: _Optional[_Union[Remedies, _Mapping]] = ...) -> None: ...

class RulesetVersion(_message.Message):
    __slots__ = ("version", "digest", "effective_from", "effective_until", "current", "source")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_FROM_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_UNTIL_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    version: str
    digest: str
    effective_from: str
    effective_until: str
    current: bool
    source: str
    def __init__(self, version: _Optional[str] = ..., digest: _Optional[str] = ..., effective_from: _Optional[str] = ..., effective_until: _Optional[str] = ..., current: _Optional[bool] = ..., source: _Optional[str] = ...) -> None: ...

class GetRulesetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetRulesetStatusResponse(_message.Message):
    __slots__ = ("catalog_digest", "loaded_at", "last_reload", "last_reload_at")
    CATALOG_DIGEST_FIELD_NUMBER: _ClassVar[int]
    LOADED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_RELOAD_FIELD_NUMBER: _ClassVar[int]
    LAST_RELOAD_AT_FIELD_NUMBER: _ClassVar[int]
    catalog_digest: str
    loaded_at: _timestamp_pb2.Timestamp
    last_reload: ReloadRulesetsResponse
    last_reload_at: _timestamp_pb2.Timestamp
    def __init__(self, catalog_digest: _Optional[str] = ..., loaded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_reload: _Optional[_Union[ReloadRulesetsResponse, _Mapping]] = ..., last_reload_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReloadRulesetsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReloadRulesetsResponse(_message.Message):
    __slots__ = ("applied", "added", "removed", "changed", "diagnostics", "catalog_digest", "set_digest")
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    ADDED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    DIAGNOSTICS_FIELD_NUMBER: _ClassVar[int]
    CATALOG_DIGEST_FIELD_NUMBER: _ClassVar[int]
    SET_DIGEST_FIELD_NUMBER: _ClassVar[int]
    applied: bool
    added: _containers.RepeatedScalarFieldContainer[str]
    removed: _containers.RepeatedScalarFieldContainer[str]
    changed: _containers.RepeatedScalarFieldContainer[str]
    diagnostics: _containers.RepeatedScalarFieldContainer[str]
    catalog_digest: str
    set_digest: str
    def __init__(self, applied: _Optional[bool] = ..., added: _Optional[_Iterable[str]] = ..., removed: _Optional[_Iterable[str]] = ..., changed: _Optional[_Iterable[str]] = ..., diagnostics: _Optional[_Iterable[str]] = ..., catalog_digest: _Optional[str] = ..., set_digest: _Optional[str] = ...) -> None: ...

class DryRunDecideRequest(_message.Message):
    __slots__ = ("case", "sourced")
    CASE_FIELD_NUMBER: _ClassVar[int]
    SOURCED_FIELD_NUMBER: _ClassVar[int]
    case: DecideRequest
    sourced: SourcedData
    def __init__(self, case: _Optional[_Union[DecideRequest, _Mapping]] = ..., sourced: _Optional[_Union[SourcedData, _Mapping]] = ...) -> None: ...

class DryRunDecideResponse(_message.Message):
    __slots__ = ("decision", "event_seq")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    EVENT_SEQ_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    event_seq: int
    def __init__(self, decision: _Optional[_Union[Decision, _Mapping]] = ..., event_seq: _Optional[int] = ...) -> None: ...

class GetPublishedRulesRequest(_message.Message):
    __slots__ = ("digest",)
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    digest: str
    def __init__(self, digest: _Optional[str] = ...) -> None: ...

class RuleSetFile(_message.Message):
    __slots__ = ("path", "content")
    PATH_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    path: str
    content: str
    def __init__(self, path: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class GetPublishedRulesResponse(_message.Message):
    __slots__ = ("set_digest", "files", "first_published_at", "versions")
    class VersionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SET_DIGEST_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    FIRST_PUBLISHED_AT_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    set_digest: str
    files: _containers.RepeatedCompositeFieldContainer[RuleSetFile]
    first_published_at: str
    versions: _containers.ScalarMap[str, str]
    def __init__(self, set_digest: _Optional[str] = ..., files: _Optional[_Iterable[_Union[RuleSetFile, _Mapping]]] = ..., first_published_at: _Optional[str] = ..., versions: _Optional[_Mapping[str, str]] = ...) -> None: ...
