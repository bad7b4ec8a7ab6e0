//! InitProducerId: a fresh cluster-unique producer id at epoch 0 (`producer_ids`), also when
//! an idempotent producer asks to bump its epoch (KIP-360): a new id serves the same purpose,
//! since its sequences start at 0 and cannot meet the old id's. Transactional ids are
//! refused: transactions are not served.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;
use tracing::warn;

use crate::kafka::dispatch::Session;

pub fn handle(request: InitProducerIdRequest, session: &Session) -> InitProducerIdResponse {
    let refused = |error: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(error.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if request.transactional_id.is_some() {
        return refused(ResponseError::TransactionalIdAuthorizationFailed);
    }
    match session.context.producer_ids.allocate() {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(reason) => {
            warn!(reason, "no producer id to hand out");
            refused(ResponseError::UnknownServerError)
        }
    }
}
